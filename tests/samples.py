"""Real recorded events, verbatim in tests/fixtures/cloudtrail-samples (SOURCES.md says where each is from)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from amiguard.models.events import wrap_cloudtrail_record

ROOT = Path(__file__).resolve().parents[1]
SAMPLES = ROOT / "tests" / "fixtures" / "cloudtrail-samples"


def sample_path(name: str) -> Path:
    return SAMPLES / name


def load_sample(name: str) -> dict[str, Any]:
    """A sample as EventBridge delivers it (bare CloudTrail records are wrapped)."""
    document = json.loads(sample_path(name).read_text())
    return document if "detail-type" in document else wrap_cloudtrail_record(document)


def all_sample_names() -> list[str]:
    return sorted(path.name for path in SAMPLES.glob("*.json"))
