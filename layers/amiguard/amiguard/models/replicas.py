"""Replica ledger rows: one per (source AMI, destination region), in the shared DynamoDB ledger.

Key (amiguard.models.ledger_keys): ``pk = IMAGE#<source-region>#<source-image-id>``, ``sk = REPLICA#<dest-region>``.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from pydantic import BaseModel, ConfigDict

from amiguard.models.ledger_keys import image_pk, replica_sk


class ReplicaStatus(StrEnum):
    """A replica ledger row's status."""

    PENDING = "pending"  # CopyImage accepted; the copy is not available yet
    AVAILABLE = "available"
    FAILED = "failed"  # the copy failed, or CopyImage kept failing: a new approval tries again
    RETRYING = "retrying"  # CopyImage failed transiently; the event is retried (bounded)
    WOULD_COPY = "would-copy"  # audit mode: nothing was copied
    DEPRECATED = "deprecated"  # source deregistered, replica deprecated
    DEREGISTERED = "deregistered"  # source deregistered, replica deregistered


class ReplicaRecord(BaseModel):
    """Where one source AMI's copy in one DR region stands."""

    model_config = ConfigDict(frozen=True)

    source_region: str
    source_image_id: str
    destination_region: str
    status: ReplicaStatus
    replica_id: str | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    finished_by: str | None = None  # the event that recorded the finish: its retries report it again
    attempts: int = 0
    last_error: str | None = None
    kms_key_id: str | None = None
    client_token: str | None = None
    # Which copy this is: a copy that failed or was deregistered is replaced by the next generation, sent
    # with a new ClientToken (EC2 answers a reused token with the first copy's id, even a dead one).
    generation: int = 1

    @property
    def pk(self) -> str:
        return image_pk(self.source_region, self.source_image_id)

    @property
    def sk(self) -> str:
        return replica_sk(self.destination_region)

    @property
    def latency_seconds(self) -> float | None:
        if self.started_at and self.finished_at:
            return max((self.finished_at - self.started_at).total_seconds(), 0.0)
        return None


