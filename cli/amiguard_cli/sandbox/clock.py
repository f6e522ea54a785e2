"""The sandbox's clocks: real time (the demo, most tests) or virtual time (the fault-injection suite).

Lambda's behaviour in time is part of what the sandbox models: each attempt has a deadline (the function's
``Timeout`` in template.yaml) and an asynchronous invocation that fails is retried after 1 and then 2 more
minutes. With :class:`RealClock` the deadline is real and the waits between attempts are skipped (a test does
not wait three minutes). :class:`VirtualClock` makes every wait cost nothing but virtual time: ``time.sleep``
(botocore's backoff, slack_sdk's), botocore's adaptive token bucket, a fault's timeout and Lambda's retry
delays advance it, and ``time.time`` and ``datetime.now`` in amiguard's modules and the sandbox's (its
CloudTrail records) read it, so a throttling storm of minutes runs in milliseconds and deadlines, claim leases
and backoff all see the same time. A wait that crosses the running attempt's deadline raises
:class:`InvocationKilled` there, as Lambda stops the attempt wherever it is. Sleeps in worker threads are
added up one after the other: virtual time runs faster than real parallel time would, never slower (a
deadline is reached earlier, not missed).
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, tzinfo
from types import SimpleNamespace
from typing import Any, Protocol

import botocore.retries.bucket

_REAL_DATETIME = datetime
_real_time = time.time
_real_sleep = time.sleep
PATCHED_MODULE_PREFIXES = ("amiguard.", "amiguard_function_", "amiguard_cli.")


# A BaseException, as Lambda's stop is: no `except Exception` in amiguard can swallow it.
class InvocationKilled(BaseException):
    """Lambda stopped the attempt at its deadline (raised inside the wait that crossed it)."""


class SandboxClock(Protocol):
    def time(self) -> float: ...
    def sleep(self, seconds: float) -> None: ...
    def advance(self, seconds: float) -> None: ...
    def deadline(self, at: float | None) -> Any: ...


class RealClock:
    """Real time; Lambda's waits between attempts are skipped, deadlines are checked when an attempt ends."""

    def time(self) -> float:
        return _real_time()

    def sleep(self, seconds: float) -> None:
        _real_sleep(seconds)

    def advance(self, seconds: float) -> None:
        """Lambda's retry delays are compressed to nothing in real time."""

    @contextmanager
    def deadline(self, at: float | None) -> Iterator[None]:
        yield


class _Meta(type):
    def __instancecheck__(cls, instance: object) -> bool:
        return isinstance(instance, _REAL_DATETIME)

    def __subclasscheck__(cls, subclass: type) -> bool:
        return issubclass(subclass, _REAL_DATETIME)


class VirtualClock:
    """Time that passes when something waits. Use as a context manager (:meth:`installed`) around the run."""

    def __init__(self) -> None:
        self._offset = 0.0
        self._lock = threading.Lock()
        self._kill_at: float | None = None
        self.slept = 0.0  # virtual seconds spent waiting, in all

    def time(self) -> float:
        return _real_time() + self._offset

    def sleep(self, seconds: float) -> None:
        """Advance by ``seconds``; past the running attempt's deadline: advance to it and kill the attempt."""
        seconds = max(0.0, float(seconds))
        with self._lock:
            kill_at = self._kill_at
            if kill_at is not None and self.time() + seconds > kill_at:
                self._offset += max(0.0, kill_at - self.time())
                self.slept += seconds
                raise InvocationKilled(f"deadline reached while waiting {seconds:.1f} s")
            self._offset += seconds
            self.slept += seconds

    def advance(self, seconds: float) -> None:
        """Time passing outside any attempt (Lambda's delay before a retry)."""
        with self._lock:
            self._offset += max(0.0, seconds)

    @contextmanager
    def deadline(self, at: float | None) -> Iterator[None]:
        previous, self._kill_at = self._kill_at, at
        try:
            yield
        finally:
            self._kill_at = previous

    def now(self, tz: tzinfo | None = None) -> datetime:
        return _REAL_DATETIME.fromtimestamp(self.time(), tz)

    @contextmanager
    def installed(self) -> Iterator[VirtualClock]:
        """Patch ``time.time``/``time.sleep``, botocore's token-bucket waits and ``datetime`` in amiguard's modules."""
        clock = self

        class VirtualDatetime(_REAL_DATETIME, metaclass=_Meta):
            @classmethod
            def now(cls, tz: tzinfo | None = None) -> datetime:  # type: ignore[override]
                return clock.now(tz)

            @classmethod
            def utcnow(cls) -> datetime:  # type: ignore[override]
                return clock.now(UTC).replace(tzinfo=None)

        class VirtualCondition:
            """botocore's token bucket waits on a Condition for new tokens: the wait costs virtual time."""

            def __init__(self, lock: Any) -> None:
                self._lock = lock

            def __enter__(self) -> Any:
                return self._lock.__enter__()

            def __exit__(self, *args: Any) -> Any:
                return self._lock.__exit__(*args)

            def wait(self, timeout: float | None = None) -> bool:
                clock.sleep(timeout or 0.0)
                return False

            def notify(self, n: int = 1) -> None:
                pass

        patched: list[tuple[Any, str, Any]] = []

        def patch(target: Any, name: str, value: Any) -> None:
            patched.append((target, name, getattr(target, name)))
            setattr(target, name, value)

        patch(time, "time", self.time)
        patch(time, "sleep", self.sleep)
        patch(botocore.retries.bucket, "threading", SimpleNamespace(Lock=threading.Lock, Condition=VirtualCondition))
        for name, module in list(sys.modules.items()):
            if name.startswith(PATCHED_MODULE_PREFIXES) and getattr(module, "datetime", None) is _REAL_DATETIME:
                patch(module, "datetime", VirtualDatetime)
        try:
            yield self
        finally:
            for target, name, value in reversed(patched):
                setattr(target, name, value)
