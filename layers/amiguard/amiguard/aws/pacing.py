"""Client-side pacing of EC2's read calls: one token bucket per region, mirroring EC2's own request-rate limit.

EC2 throttles each account's API calls per region with token buckets; for non-mutating calls (``Describe*``,
``Get*``) AWS documents a bucket of 100 tokens refilled at 20 per second. A scan that keeps sending faster
than that only collects ``RequestLimitExceeded`` answers and waits out retry back-offs (and botocore's adaptive
mode, once throttled, slows down further than the bucket requires and recovers slowly). Sending at the
bucket's own pace instead keeps the scan at the floor the bucket sets: the burst at once, then the refill rate.

- Every HTTP attempt of a read call (retries included: EC2 counts them too) takes a token first, from the
  region's bucket shared by every client and thread of the scan; a caller short of a token reserves the next
  one and sleeps until it is due, so waiting callers leave in order, never in a herd.
- EC2's bucket is the account's, shared with every other caller in the region, so its level is unknown
  until EC2 says it is empty. A bucket starts *unarmed* (calls go at full speed: a server with room to spare
  is used at its own speed); the first ``RequestLimitExceeded`` arms it, empty, and every later one empties
  it again, so pacing always resumes from EC2's own state. The standard retry mode retries those calls.
- After emptying, the bucket waits for a small ``cushion`` of tokens before sending again: requests sent in
  order can arrive a few milliseconds out of order, and the tokens EC2 holds back absorb that.

Mutating calls (the ``--fix`` remedies) are not paced: they have their own, larger EC2 bucket and are few.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import boto3
from botocore.config import Config

from amiguard.aws.clients import RETRY_CONFIG, ClientFactory

# What AWS documents for EC2's non-mutating actions (per account and region).
EC2_READ_BURST = 100
EC2_READ_REFILL_PER_SECOND = 20.0
# Tokens left to EC2's bucket after it said it was empty, for requests that arrive out of order (0.25 s).
DEFAULT_CUSHION = 5

READ_PREFIXES = ("Describe", "Get")
# With pacing, the standard retry mode: it retries what still gets throttled (after a jittered back-off)
# without adaptive mode's own client-side rate limiter, which would fight the pacer and, once throttled,
# hold the rate well under the refill rate for a long while.
PACED_RETRY_CONFIG = RETRY_CONFIG.merge(Config(retries={"mode": "standard", "max_attempts": 8}))
THROTTLING_CODES = frozenset({"RequestLimitExceeded", "Throttling", "ThrottlingException"})


@dataclass
class TokenBucket:
    """``capacity`` tokens, ``rate`` per second; :meth:`take` waits for one (thread-safe).

    Unarmed (``armed=False``), it lets every call through and counts nothing until :meth:`drain` arms it.
    """

    capacity: float
    rate: float
    cushion: float = 0.0
    armed: bool = True
    clock: Callable[[], float] = time.monotonic
    sleep: Callable[[float], None] = time.sleep
    tokens: float = field(init=False)
    _stamp: float = field(init=False)
    _lock: threading.Lock = field(init=False, default_factory=threading.Lock)

    def __post_init__(self) -> None:
        if self.rate <= 0 or self.capacity < 1:
            raise ValueError("a token bucket needs a positive rate and room for at least one token")
        self.tokens = self.capacity
        self._stamp = self.clock()

    def _refill(self, now: float) -> None:
        self.tokens = min(self.capacity, self.tokens + (now - self._stamp) * self.rate)
        self._stamp = now

    def reserve(self) -> float:
        """Take a token; return how many seconds to wait before using it (0 when one was there)."""
        with self._lock:
            if not self.armed:
                return 0.0
            self._refill(self.clock())
            self.tokens -= 1  # below zero: a queue of reservations, each due 1/rate after the previous
            return max(0.0, -self.tokens / self.rate)

    def take(self) -> None:
        """Take a token, waiting for it when the bucket is empty."""
        wait = self.reserve()
        if wait > 0:
            self.sleep(wait)

    def drain(self) -> None:
        """The server said it is empty: so is this bucket, short of the cushion (queued reservations stay)."""
        with self._lock:
            now = self.clock()
            if not self.armed:
                self.armed, self.tokens, self._stamp = True, 0.0, now
            self._refill(now)
            self.tokens = min(self.tokens, -self.cushion)


class RegionPacer:
    """One :class:`TokenBucket` per region, attached to EC2 clients (:meth:`attach`) through botocore events.

    ``armed=True`` paces from the first call, assuming EC2's bucket is full (``burst`` tokens) when the scan
    starts; the default waits for EC2's first ``RequestLimitExceeded`` (see the module's notes).
    """

    def __init__(
        self,
        *,
        burst: int = EC2_READ_BURST,
        rate: float = EC2_READ_REFILL_PER_SECOND,
        cushion: int = DEFAULT_CUSHION,
        armed: bool = False,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.burst = burst
        self.rate = rate
        self.cushion = cushion
        self.armed = armed
        self._clock = clock
        self._sleep = sleep
        self._buckets: dict[str, TokenBucket] = {}
        self._lock = threading.Lock()
        self.throttled = 0  # RequestLimitExceeded answers seen (each emptied its region's bucket)

    def bucket(self, region: str) -> TokenBucket:
        with self._lock:
            if region not in self._buckets:
                capacity = max(1, self.burst - self.cushion)
                self._buckets[region] = TokenBucket(
                    capacity, self.rate, self.cushion, self.armed, self._clock, self._sleep
                )
            return self._buckets[region]

    def attach(self, client: Any) -> Any:
        """Pace ``client``'s read calls (once per client; returns the client)."""
        with self._lock:
            if getattr(client, "_amiguard_paced", False):
                return client
            client._amiguard_paced = True
        bucket = self.bucket(str(client.meta.region_name))

        def before_send(event_name: str, **_: Any) -> None:
            if event_name.rsplit(".", 1)[-1].startswith(READ_PREFIXES):
                bucket.take()

        def needs_retry(response: Any = None, **_: Any) -> None:
            # (http response, parsed) of each attempt: a throttle means EC2's bucket is empty right now.
            if response is not None and isinstance(response[1], dict):
                code = response[1].get("Error", {}).get("Code")
                if code in THROTTLING_CODES:
                    with self._lock:
                        self.throttled += 1
                    bucket.drain()

        events = client.meta.events
        events.register("before-send.ec2", before_send)
        events.register("needs-retry.ec2", needs_retry)
        return client


class InFlightCap:
    """At most ``limit`` HTTP attempts in flight at once across every client it is attached to (a process-wide
    cap for a scan of many accounts: each account-region is paced by its own bucket, and together they must not
    open more connections than the machine and its network can serve).

    A slot is taken on ``before-send`` (after the pacer's token: a caller waiting for a token holds no slot) and
    given back on ``needs-retry``, which botocore emits after every attempt, answered or failed. A thread holds
    at most one slot (a thread makes one request at a time): an attempt that ends without ``needs-retry`` (an
    exception botocore does not catch) leaves the slot with its thread, which reuses it for its next request.
    """

    def __init__(self, limit: int) -> None:
        if limit < 1:
            raise ValueError("the in-flight cap needs room for at least one request")
        self.limit = limit
        self._slots = threading.BoundedSemaphore(limit)
        self._held = threading.local()
        self._lock = threading.Lock()
        self.in_flight = 0
        self.peak = 0  # the most attempts seen in flight at once

    def acquire(self, **_: Any) -> None:
        if getattr(self._held, "slot", False):
            return
        self._slots.acquire()
        self._held.slot = True
        with self._lock:
            self.in_flight += 1
            self.peak = max(self.peak, self.in_flight)

    def release(self, **_: Any) -> None:
        if not getattr(self._held, "slot", False):
            return
        self._held.slot = False
        with self._lock:
            self.in_flight -= 1
        self._slots.release()

    def attach(self, client: Any) -> Any:
        """Count ``client``'s attempts against the cap (once per client; returns the client)."""
        if getattr(client, "_amiguard_capped", False):
            return client
        client._amiguard_capped = True
        service = client.meta.service_model.service_id.hyphenize()
        events = client.meta.events
        events.register_last(f"before-send.{service}", self.acquire)  # after the pacer's token
        events.register_first(f"needs-retry.{service}", self.release)
        return client


class PacedClients(ClientFactory):
    """A :class:`ClientFactory` whose EC2 clients are paced by ``pacer`` (``None``: not paced) and whose every
    client counts against ``cap`` (``None``: no cap)."""

    def __init__(
        self,
        session: boto3.Session | None = None,
        *,
        pacer: RegionPacer | None,
        config: Config,
        cap: InFlightCap | None = None,
    ) -> None:
        super().__init__(session, config=config)
        self.pacer = pacer
        self.cap = cap

    def _make(self, service: str, region: str | None) -> Any:
        made = super()._make(service, region)
        if service == "ec2" and self.pacer is not None:
            self.pacer.attach(made)
        if self.cap is not None:
            self.cap.attach(made)
        return made
