"""Faults injected in front of moto, on the functions' own AWS calls: what AWS and the network do on a bad day.

A ``before-send`` hook on the functions' botocore session (registered first, so it runs before moto's) answers
a chosen call, by function, service and operation, with:

- ``throttle``: the service's own throttling error (EC2 ``RequestLimitExceeded`` 503, SNS ``Throttling`` 400,
  DynamoDB and Secrets Manager ``ThrottlingException`` 400); moto never sees the request;
- ``server-error``: a 500 ``InternalError`` (in each protocol's shape); moto never sees the request;
- ``connect-timeout``: ``ConnectTimeoutError`` after the client's connect timeout: the request never left;
- ``read-timeout``: the request reaches moto and is processed, then the answer is lost: ``ReadTimeoutError``
  after the client's read timeout. The call happened; the caller does not know it.

botocore retries all four as it would in AWS (the hook sits below the retry loop). Each fault fires ``times``
times (None: until :meth:`FaultInjector.clear`). The time a timeout costs is slept on the sandbox's clock, so a
:class:`~amiguard_cli.sandbox.clock.VirtualClock` makes it cost nothing but virtual time.

Fidelity gap: the sandbox's CloudTrail recorder writes one record per successful call as the client saw it, so
a mutating call whose first answer was lost (and which was retried) is recorded once, not twice.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from botocore.awsrequest import AWSPreparedRequest, AWSResponse
from botocore.exceptions import ConnectTimeoutError, ReadTimeoutError
from moto.core.botocore_stubber import MockRawResponse
from moto.core.models import botocore_stubber

from amiguard.aws.clients import ATTEMPTS_PER_CALL, timeouts_for

# A host no moto backend answers: a request answered by a fault is never processed by moto.
NOWHERE = "https://fault-injected.invalid/"


class FaultKind(StrEnum):
    THROTTLE = "throttle"
    SERVER_ERROR = "server-error"
    CONNECT_TIMEOUT = "connect-timeout"
    READ_TIMEOUT = "read-timeout"  # after processing: the call happened, the answer is lost


class Persistence(StrEnum):
    ONCE = "once"  # one attempt fails; botocore's retry succeeds
    EXHAUSTING = "exhausting"  # every botocore attempt of one call fails (9): that Lambda attempt fails
    PERSISTENT = "persistent"  # until cleared: every Lambda attempt fails, the event lands in the failure queue

    @property
    def times(self) -> int | None:
        return {Persistence.ONCE: 1, Persistence.EXHAUSTING: ATTEMPTS_PER_CALL, Persistence.PERSISTENT: None}[self]


@dataclass(frozen=True)
class Call:
    """One AWS request a function sent: ``("public_guard", "ec2", "ModifyImageAttribute")``."""

    function: str
    service: str
    operation: str

    def __str__(self) -> str:
        return f"{self.function}:{self.service}.{self.operation}"


@dataclass
class Fault:
    call: Call
    kind: FaultKind
    times: int | None = 1  # None: every attempt until cleared (or until ``until``)
    until: float | None = None  # on the sandbox's clock (epoch seconds): the fault ends then
    fired: int = 0

    def active(self, now: float) -> bool:
        return (self.times is None or self.fired < self.times) and (self.until is None or now < self.until)


# botocore's hyphenized service ids that are not the client's service name.
_CLIENT_NAMES = {"secrets-manager": "secretsmanager"}
# Service ids (hyphenized, as in botocore's event names) -> the protocol family of their error bodies.
_QUERY_SERVICES = frozenset({"sns", "sts", "iam", "sqs", "cloudformation"})
_THROTTLE_CODES = {"ec2": "RequestLimitExceeded", "sns": "Throttling", "sts": "Throttling"}


def error_response(service: str, request: AWSPreparedRequest, kind: FaultKind) -> AWSResponse:
    """An error answer in ``service``'s own wire format (EC2 XML, query XML or JSON)."""
    throttle = kind is FaultKind.THROTTLE
    code = _THROTTLE_CODES.get(service, "ThrottlingException") if throttle else "InternalError"
    message = "Rate exceeded" if throttle else "An internal error has occurred"
    status = 500 if not throttle else (503 if service == "ec2" else 400)
    if service == "ec2":
        body = (
            f"<Response><Errors><Error><Code>{code}</Code><Message>{message}</Message></Error></Errors>"
            "<RequestID>fault-injected</RequestID></Response>"
        )
        headers = {"Content-Type": "text/xml"}
    elif service in _QUERY_SERVICES:
        kind_of = "Sender" if throttle else "Receiver"
        body = (
            f"<ErrorResponse><Error><Type>{kind_of}</Type><Code>{code}</Code><Message>{message}</Message></Error>"
            "<RequestId>fault-injected</RequestId></ErrorResponse>"
        )
        headers = {"Content-Type": "text/xml"}
    else:
        json_code = code if throttle else ("InternalServerError" if service == "dynamodb" else "InternalServiceError")
        body = json.dumps({"__type": json_code, "message": message})
        headers = {"Content-Type": "application/x-amz-json-1.0", "x-amzn-ErrorType": json_code}
    return AWSResponse(request.url, status, headers, MockRawResponse(body))  # type: ignore[arg-type]


@dataclass
class FaultInjector:
    """Holds the faults and the calls seen; :meth:`hook` is registered on the functions' botocore session."""

    current_function: Callable[[], str | None]
    sleep: Callable[[float], None]
    now: Callable[[], float]
    faults: list[Fault] = field(default_factory=list)
    seen: list[Call] = field(default_factory=list)  # every request a function sent (each attempt), in order
    injected: list[tuple[Call, FaultKind]] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, call: Call, kind: FaultKind, times: int | None = 1, *, lasting: float | None = None) -> Fault:
        """Fault ``call`` ``times`` times (None: until cleared), or for ``lasting`` seconds from now."""
        fault = Fault(call, kind, None if lasting is not None else times, self.now() + lasting if lasting else None)
        self.faults.append(fault)
        return fault

    def clear(self) -> None:
        """The cause is fixed: no fault fires any more."""
        self.faults.clear()

    def register(self, events: Any) -> None:
        events.register_first("before-send", self.hook)

    def _take(self, call: Call) -> Fault | None:
        with self._lock:
            self.seen.append(call)
            for fault in self.faults:
                if fault.call == call and fault.active(self.now()):
                    fault.fired += 1
                    self.injected.append((call, fault.kind))
                    return fault
        return None

    def hook(self, event_name: str, request: AWSPreparedRequest, **_: Any) -> AWSResponse | None:
        function = self.current_function()
        if function is None:
            return None  # sandbox plumbing or a person's call: never faulted
        service_id, operation = event_name.split(".", 2)[1:]
        service = _CLIENT_NAMES.get(service_id, service_id)
        fault = self._take(Call(function, service, operation))
        if fault is None:
            return None
        timeouts = timeouts_for(service)
        if fault.kind is FaultKind.CONNECT_TIMEOUT:
            self.sleep(timeouts.connect)
            raise ConnectTimeoutError(endpoint_url=request.url)
        if fault.kind is FaultKind.READ_TIMEOUT:
            botocore_stubber(event_name=event_name, request=request)  # AWS does the work...
            self.sleep(timeouts.read)
            raise ReadTimeoutError(endpoint_url=request.url)  # ...and the answer never arrives
        response = error_response(service, request, fault.kind)
        request.url = NOWHERE  # moto's own before-send handler, called after this one, then finds nothing to do
        return response
