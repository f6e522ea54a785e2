"""EC2's batch limits, and cutting a list of ids to fit them."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

FILTER_VALUES_MAX = 200  # values per DescribeImages filter
TAG_RESOURCES_MAX = 500  # resources per CreateTags / DeleteTags call (the CLI documents up to 1,000)


def chunks(items: Sequence[str], size: int) -> Iterator[list[str]]:
    for start in range(0, len(items), size):
        yield list(items[start : start + size])
