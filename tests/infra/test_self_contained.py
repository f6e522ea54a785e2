"""The repository stands alone: no file refers to files outside it (its readers have only the repository)."""

from __future__ import annotations

import re
import subprocess

from .sam_tools import REPO_ROOT

OUTSIDE = re.compile(r"\.\./shared|shared/DESIGN\.md|(^|[^/a-z])DESIGN\.md")


def test_no_tracked_file_refers_to_a_file_outside_the_repository_when_read() -> None:
    tracked = subprocess.run(["git", "ls-files"], cwd=REPO_ROOT, capture_output=True, text=True, check=True).stdout
    offenders = []
    for name in tracked.splitlines():
        path = REPO_ROOT / name
        if name.startswith(".ci/") or not path.is_file() or path.suffix in {".gz", ".png"}:
            continue
        text = path.read_text(encoding="utf-8", errors="ignore")
        offenders += [f"{name}:{n}" for n, line in enumerate(text.splitlines(), 1) if OUTSIDE.search(line)]
    assert not offenders, f"files refer outside the repository: {offenders[:10]}"
