"""The scan: every AMI the account owns, in every region asked for, through the checks of
:mod:`amiguard.policy.checks`; with ``fix``, the enforce-mode remedies applied through the same adapter
methods ``public_guard`` uses. Backs ``amiguard scan`` and the ``sweeper`` function.

Regions run in parallel; within a region, per-image calls run on a bounded thread pool (the clients
retry throttling, :data:`amiguard.aws.clients.RETRY_CONFIG`). Nothing one region or one AMI does wrong
stops the rest: a region that cannot be listed, a check whose facts cannot be read, an AMI deregistered
between the list and the describe — each is recorded in the :class:`ScanReport` and the scan goes on.

Regions a check needs besides the scanned ones (the DR regions where replicas of approved AMIs live, the
source region of a replica) are listed once each, after the scanned ones; no check runs on them.
"""

from __future__ import annotations

import contextvars
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any, ParamSpec, Protocol, TypeVar

from botocore.exceptions import BotoCoreError, ClientError, EndpointConnectionError

from amiguard.aws.errors import error_code, is_gone
from amiguard.models.findings import Action, Finding
from amiguard.models.images import Image
from amiguard.models.replicas import ReplicaRecord
from amiguard.models.settings import Settings
from amiguard.policy.checks import (
    CheckContext,
    Checks,
    Fact,
    ImageFacts,
    MarkViolations,
    Problem,
    RegionFacts,
    Remedy,
    RemedyPort,
    ReplicaRemedyPort,
    TaggingRemedyPort,
    ViolationRemedyPort,
    checks_for,
    idle_candidates,
    replica_sources_needed,
)
from amiguard.policy.sharing import BlockPublicAccess, Grant
from amiguard.policy.tagging import ViolationRecord

DEFAULT_CONCURRENCY = 8

_P = ParamSpec("_P")
_T = TypeVar("_T")


class _Pool(ThreadPoolExecutor):
    """A thread pool whose tasks see the submitter's context variables, as the calling thread would.

    Calls made from the pool then carry whatever the caller set (the sandbox records them under the
    function's identity, so amiguard recognises its own calls there as it does in AWS).
    """

    def submit(self, fn: Callable[_P, _T], /, *args: _P.args, **kwargs: _P.kwargs) -> Future[_T]:
        return super().submit(contextvars.copy_context().run, fn, *args, **kwargs)  # type: ignore[arg-type]

# Error codes that say "this region is not usable by this account", with what to tell the user.
_REGION_DISABLED = {"OptInRequired", "AuthFailure", "InvalidClientTokenId", "UnrecognizedClientException"}
_ACCESS_DENIED = {"UnauthorizedOperation", "AccessDenied", "AccessDeniedException"}
_THROTTLED = {"RequestLimitExceeded", "Throttling", "ThrottlingException", "TooManyRequestsException"}


class ScanPort(RemedyPort, Protocol):
    """What a scan reads in one region (:class:`~amiguard.aws.images.Ec2Images` satisfies it)."""

    region: str

    def owned_images(self) -> Iterator[Image]: ...
    def launch_permissions(self, image_id: str) -> list[Grant]: ...
    def public_snapshot_ids(self) -> set[str]: ...
    def owned_snapshot_ids(self) -> list[str]: ...
    def create_volume_permissions(self, snapshot_id: str) -> list[Grant]: ...
    def block_public_access_state(self) -> BlockPublicAccess: ...
    def snapshot_block_public_access_state(self) -> BlockPublicAccess: ...
    def instances_by_image(self, image_ids: Sequence[str]) -> dict[str, int]: ...


class ReplicaRecordsPort(Protocol):
    """The ledger's replica rows (:class:`~amiguard.aws.replicas.DynamoReplicaLedger`): which copies amiguard made."""

    def replicas(self, source_region: str, source_image_id: str) -> dict[str, ReplicaRecord]: ...


class ViolationsPort(ViolationRemedyPort, Protocol):
    """amiguard's record of tag violations (:class:`~amiguard.aws.violations.DynamoViolations`)."""

    def in_region(self, account: str, region: str) -> dict[str, ViolationRecord]: ...


ScanPortInRegion = Callable[[str], ScanPort]
ReplicaPortInRegion = Callable[[str], ReplicaRemedyPort]
TaggingPortInRegion = Callable[[str], TaggingRemedyPort]


@dataclass(frozen=True)
class _Ports:
    """:class:`~amiguard.policy.checks.RemedyPorts` for one scanned region."""

    images: ScanPort
    replicas: ReplicaPortInRegion | None
    tags: TaggingPortInRegion | None
    records: ViolationsPort | None = None

    def replication(self, region: str) -> ReplicaRemedyPort:
        if self.replicas is None:
            raise RuntimeError("this scan was given no replication adapter: replication problems are report-only")
        return self.replicas(region)

    @property
    def tagging(self) -> TaggingRemedyPort:
        if self.tags is None:
            raise RuntimeError("this scan was given no tagging adapter: tag problems are report-only")
        return self.tags(self.images.region)

    @property
    def violations(self) -> ViolationRemedyPort:
        if self.records is None:
            raise RuntimeError("this scan was given no ledger: violations are report-only")
        return self.records


class Progress(Protocol):
    """Told what the scan is doing (the CLI's progress bar); every method is called from worker threads."""

    def region_listed(self, region: str, images: int) -> None: ...
    def image_done(self, region: str) -> None: ...
    def region_failed(self, region: str, message: str) -> None: ...


class NoProgress:
    def region_listed(self, region: str, images: int) -> None:
        pass

    def image_done(self, region: str) -> None:
        pass

    def region_failed(self, region: str, message: str) -> None:
        pass


@dataclass(frozen=True)
class ScanError:
    """Something the scan could not check (or fix), said the way a user can act on it."""

    region: str
    # list-images, reference-images, launch-permissions, public-snapshots, snapshot-shares, block-public-access,
    # snapshot-block-public-access, images-in-use, fix, region
    stage: str
    message: str
    code: str = ""
    image_id: str | None = None
    snapshot_id: str | None = None
    account: str = ""  # set in a scan of several accounts (``amiguard scan --org``)

    def to_dict(self) -> dict[str, Any]:
        return {
            **({"account": self.account} if self.account else {}),
            "region": self.region,
            "stage": self.stage,
            "code": self.code,
            "image_id": self.image_id,
            "snapshot_id": self.snapshot_id,
            "message": self.message,
        }


@dataclass
class RegionResult:
    region: str
    images: int = 0  # owned AMIs listed
    vanished: list[str] = field(default_factory=list)  # deregistered between the list and a later call
    listed: bool = False  # False: the region could not be scanned at all
    account: str = ""  # set in a scan of several accounts

    def to_dict(self) -> dict[str, Any]:
        where = {"account": self.account} if self.account else {}
        return where | {"region": self.region, "scanned": self.listed, "images": self.images, "vanished": self.vanished}


EXIT_CLEAN, EXIT_FINDINGS, EXIT_ERROR = 0, 1, 2


@dataclass
class ScanReport:
    account: str
    fix: bool
    started_at: datetime
    finished_at: datetime | None = None
    regions: list[RegionResult] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)
    errors: list[ScanError] = field(default_factory=list)
    # account id -> name, in a scan of several accounts (``account`` then names the organization)
    account_names: dict[str, str] = field(default_factory=dict)
    # problem fingerprint -> the action of a fix that raised (its answer may be lost after EC2 made it): a later
    # pass that no longer sees the problem knows what took effect
    unfixed: dict[str, Action] = field(default_factory=dict)

    @property
    def images(self) -> int:
        return sum(region.images for region in self.regions)

    @property
    def complete(self) -> bool:
        return not self.errors and all(region.listed for region in self.regions)

    @property
    def exit_code(self) -> int:
        """1 on any finding (even from an incomplete scan: what was found is certain); otherwise 2 when
        something could not be checked (an incomplete scan is never "clean"); 0 only when complete and clean.
        """
        if self.findings:
            return EXIT_FINDINGS
        return EXIT_CLEAN if self.complete and self.regions else EXIT_ERROR

    def counts(self) -> dict[str, int]:
        result: dict[str, int] = {}
        for finding in self.findings:
            result[finding.type.value] = result.get(finding.type.value, 0) + 1
        return dict(sorted(result.items()))

    def to_dict(self) -> dict[str, Any]:
        return {
            "account": self.account,
            "fix": self.fix,
            "started_at": self.started_at.isoformat(),
            "finished_at": self.finished_at.isoformat() if self.finished_at else None,
            "exit_code": self.exit_code,
            "images": self.images,
            "counts": self.counts(),
            "regions": [region.to_dict() for region in self.regions],
            "findings": [self._finding_dict(finding) for finding in self.findings],
            "errors": [error.to_dict() for error in self.errors],
        } | (
            {"accounts": [{"id": id_, "name": name} for id_, name in sorted(self.account_names.items())]}
            if self.account_names
            else {}
        )

    def _finding_dict(self, finding: Finding) -> dict[str, Any]:
        message = finding.to_message()
        if self.account_names:
            message["account_name"] = self.account_names.get(finding.account, "")
        return message


def describe_error(error: Exception, region: str) -> tuple[str, str]:
    """(code, message) for an AWS failure, phrased for the person running the scan."""
    if isinstance(error, ClientError):
        code = error_code(error)
        text = str(error.response.get("Error", {}).get("Message") or error)
        if code in _REGION_DISABLED:
            return code, f"{region} is not enabled for this account or these credentials ({code}: {text})"
        if code in _ACCESS_DENIED:
            return code, f"access denied in {region} ({code}: {text})"
        if code in _THROTTLED:
            return code, f"still throttled in {region} after adaptive retries ({code})"
        return code, f"{code}: {text}"
    if isinstance(error, EndpointConnectionError):
        return "EndpointConnectionError", f"cannot reach EC2 in {region}: does the region exist? ({error})"
    return type(error).__name__, str(error)


class Scanner:
    """Runs the checks over every owned AMI of the given regions; applies remedies when ``fix``."""

    def __init__(
        self,
        *,
        settings: Settings,
        images: ScanPortInRegion,
        account: str,
        fix: bool,
        replication: ReplicaPortInRegion | None = None,
        tagging: TaggingPortInRegion | None = None,
        replica_records: ReplicaRecordsPort | None = None,
        violations: ViolationsPort | None = None,
        checks: Checks | None = None,
        concurrency: int = DEFAULT_CONCURRENCY,
        progress: Progress | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._settings = settings
        self._images = images
        self._replication = replication
        self._replica_records = replica_records
        self._tagging = tagging
        self._violations = violations
        self._account = account
        self._fix = fix
        self._checks = checks or checks_for(settings)
        self._concurrency = max(1, concurrency)
        self._progress = progress or NoProgress()
        self._clock = clock

    def scan(self, regions: Sequence[str]) -> ScanReport:
        """List every region (in parallel), then check every region's AMIs (in parallel)."""
        report = ScanReport(account=self._account, fix=self._fix, started_at=self._clock())
        if not regions:
            report.finished_at = self._clock()
            return report
        with _Pool(max_workers=len(regions), thread_name_prefix="amiguard-region") as pool:
            listings = list(pool.map(self._list_region, regions))
            inventory = {listing.result.region: listing.images for listing in listings if listing.result.listed}
            context = CheckContext(
                settings=self._settings, account=self._account, fix=self._fix, inventory=inventory, now=self._clock()
            )
            references = sorted(
                set().union(*(check.regions_needed(inventory, context) for check in self._checks.region))
                - set(regions)
            )
            for region, images, error in pool.map(self._list_reference, references):
                if error is None:
                    inventory[region] = images
                else:
                    report.errors.append(error)
            if self._replica_records is not None:
                records, errors = self._read_replica_records(self._replica_records, pool, inventory)
                context = replace(context, replica_records=records)
                report.errors.extend(errors)
            outcomes = list(pool.map(lambda listing: self._check_region(listing, context), listings))
        for listing, (findings, errors, unfixed) in zip(listings, outcomes, strict=True):
            report.regions.append(listing.result)
            report.findings.extend(findings)
            report.errors.extend(listing.errors + errors)
            report.unfixed.update(unfixed)
        report.finished_at = self._clock()
        return report

    # --- phase 1: list ---------------------------------------------------------------------------------

    def _list_region(self, region: str) -> _Listing:
        listing = _Listing(RegionResult(region))
        try:
            port = self._images(region)
            listing.port = port
            listing.images = list(port.owned_images())
        except (ClientError, BotoCoreError) as error:
            code, message = describe_error(error, region)
            listing.errors.append(ScanError(region, "list-images", message, code))
            self._progress.region_failed(region, message)
            return listing
        listing.result.listed = True
        listing.result.images = len(listing.images)
        self._progress.region_listed(region, len(listing.images))
        return listing

    def _list_reference(self, region: str) -> tuple[str, list[Image], ScanError | None]:
        """A region a check needs (not scanned itself): its owned AMIs, or why they could not be listed."""
        try:
            return region, list(self._images(region).owned_images()), None
        except (ClientError, BotoCoreError) as error:
            code, message = describe_error(error, region)
            why = f"{message} (listed only to check DR replicas and their sources; those checks were skipped)"
            return region, [], ScanError(region, "reference-images", why, code)

    def _read_replica_records(
        self, ledger: ReplicaRecordsPort, pool: ThreadPoolExecutor, inventory: Mapping[str, Sequence[Image]]
    ) -> tuple[dict[tuple[str, str], Mapping[str, ReplicaRecord]], list[ScanError]]:
        """The ledger rows of every source the replication check asks about (one Query each, in parallel)."""
        sources = sorted(replica_sources_needed(inventory, self._settings))

        def read(source: tuple[str, str]) -> tuple[tuple[str, str], Mapping[str, ReplicaRecord] | ScanError]:
            try:
                return source, ledger.replicas(*source)
            except (ClientError, BotoCoreError) as error:
                code, message = describe_error(error, "the ledger")
                why = f"replica records of {source[1]} unreadable: {message} (its replication was not checked)"
                return source, ScanError(source[0], "replica-records", why, code, image_id=source[1])

        records: dict[tuple[str, str], Mapping[str, ReplicaRecord]] = {}
        errors: list[ScanError] = []
        for source, result in pool.map(read, sources):
            if isinstance(result, ScanError):
                errors.append(result)
            else:
                records[source] = result
        return records, errors

    # --- phase 2: check --------------------------------------------------------------------------------

    def _check_region(
        self, listing: _Listing, context: CheckContext
    ) -> tuple[list[Finding], list[ScanError], dict[str, Action]]:
        if not listing.result.listed or listing.port is None:
            return [], [], {}
        port, region = listing.port, listing.result.region
        errors: list[ScanError] = []
        problems: list[Problem] = []
        with _Pool(max_workers=self._concurrency, thread_name_prefix=f"amiguard-{region}") as pool:
            per_image = pool.map(lambda image: self._image_problems(port, image, context), listing.images)
            # Region-wide facts are read (here, and each snapshot's sharing on the pool) while the per-image
            # calls run; nothing waits on the pool from inside it, so any concurrency, even 1, completes.
            region_problems, region_errors = self._region_problems(port, listing.images, context, pool)
            for image_problems, image_errors, vanished in per_image:
                problems.extend(image_problems)
                errors.extend(image_errors)
                if vanished:
                    listing.result.vanished.append(vanished)
        problems = region_problems + problems
        errors = region_errors + errors
        gone = set(listing.result.vanished)
        problems = [problem for problem in problems if not (problem.image and problem.image.image_id in gone)]
        applied = self._apply_remedies(port, problems, errors, gone) if self._fix else set()
        findings = [self._finding(region, problem, applied) for problem in problems]
        unfixed = {
            finding.problem_fingerprint: problem.remedy.done
            for problem, finding in zip(problems, findings, strict=True)
            if self._fix and problem.remedy is not None and problem.remedy not in applied
        }
        listing.result.vanished.sort()
        return findings, errors, unfixed

    def _region_problems(
        self, port: ScanPort, images: Sequence[Image], context: CheckContext, pool: ThreadPoolExecutor
    ) -> tuple[list[Problem], list[ScanError]]:
        wanted: set[Fact] = set()
        for check in self._checks.region:
            wanted |= check.needs(images, context)
        errors: list[ScanError] = []
        state: BlockPublicAccess | None = None
        public: frozenset[str] | None = None
        if Fact.BLOCK_PUBLIC_ACCESS in wanted:
            try:
                state = port.block_public_access_state()
            except (ClientError, BotoCoreError) as error:
                code, message = describe_error(error, port.region)
                errors.append(ScanError(port.region, Fact.BLOCK_PUBLIC_ACCESS.value, message, code))
        if Fact.PUBLIC_SNAPSHOTS in wanted:
            try:
                public = frozenset(port.public_snapshot_ids())
            except (ClientError, BotoCoreError) as error:
                code, message = describe_error(error, port.region)
                errors.append(ScanError(port.region, Fact.PUBLIC_SNAPSHOTS.value, message, code))
        snapshot_state: BlockPublicAccess | None = None
        if Fact.SNAPSHOT_BLOCK_PUBLIC_ACCESS in wanted:
            try:
                snapshot_state = port.snapshot_block_public_access_state()
            except (ClientError, BotoCoreError) as error:
                code, message = describe_error(error, port.region)
                errors.append(ScanError(port.region, Fact.SNAPSHOT_BLOCK_PUBLIC_ACCESS.value, message, code))
        in_use: dict[str, int] | None = None
        if Fact.IMAGES_IN_USE in wanted:
            try:
                in_use = port.instances_by_image(idle_candidates(images, context))
            except (ClientError, BotoCoreError) as error:
                code, message = describe_error(error, port.region)
                errors.append(ScanError(port.region, Fact.IMAGES_IN_USE.value, message, code))
        grants: dict[str, tuple[Grant, ...]] | None = None
        if Fact.SNAPSHOT_SHARES in wanted:
            grants = self._snapshot_grants(port, pool, errors)
        records: dict[str, ViolationRecord] | None = None
        if Fact.VIOLATION_RECORDS in wanted and self._violations is not None:
            try:
                records = self._violations.in_region(self._account, port.region)
            except (ClientError, BotoCoreError) as error:
                code, message = describe_error(error, port.region)
                errors.append(ScanError(port.region, Fact.VIOLATION_RECORDS.value, message, code))
        facts = RegionFacts(
            port.region,
            images,
            block_public_access=state,
            public_snapshots=public,
            snapshot_grants=grants,
            violations=records,
            snapshot_block_public_access=snapshot_state,
            images_in_use=in_use,
        )
        problems = [problem for check in self._checks.region for problem in check.evaluate(facts, context)]
        return problems, errors

    def _snapshot_grants(
        self, port: ScanPort, pool: ThreadPoolExecutor, errors: list[ScanError]
    ) -> dict[str, tuple[Grant, ...]] | None:
        """Every owned snapshot's create-volume permissions (a snapshot deleted meanwhile is left out)."""
        stage = Fact.SNAPSHOT_SHARES.value
        try:
            snapshot_ids = port.owned_snapshot_ids()
        except (ClientError, BotoCoreError) as error:
            code, message = describe_error(error, port.region)
            errors.append(ScanError(port.region, stage, message, code))
            return None

        def read(snapshot_id: str) -> tuple[str, tuple[Grant, ...] | None, ScanError | None]:
            try:
                return snapshot_id, tuple(port.create_volume_permissions(snapshot_id)), None
            except ClientError as error:
                if is_gone(error):
                    return snapshot_id, None, None
                code, message = describe_error(error, port.region)
                return snapshot_id, None, ScanError(port.region, stage, message, code, snapshot_id=snapshot_id)
            except BotoCoreError as error:
                code, message = describe_error(error, port.region)
                return snapshot_id, None, ScanError(port.region, stage, message, code, snapshot_id=snapshot_id)

        grants: dict[str, tuple[Grant, ...]] = {}
        for snapshot_id, read_grants, failure in pool.map(read, snapshot_ids):
            if failure is not None:
                errors.append(failure)
            elif read_grants is not None:
                grants[snapshot_id] = read_grants
        return grants

    def _image_problems(
        self, port: ScanPort, image: Image, context: CheckContext
    ) -> tuple[list[Problem], list[ScanError], str | None]:
        """An image's problems and errors, or the image id when it was deregistered mid-scan."""
        try:
            permissions: tuple[Grant, ...] | None = None
            if any(check.needs_launch_permissions(image, context) for check in self._checks.image):
                try:
                    permissions = tuple(port.launch_permissions(image.image_id))
                except ClientError as error:
                    if is_gone(error):
                        return [], [], image.image_id
                    raise
            facts = ImageFacts(image, permissions)
            problems = [problem for check in self._checks.image for problem in check.evaluate_image(facts, context)]
            return problems, [], None
        except (ClientError, BotoCoreError) as error:
            code, message = describe_error(error, port.region)
            failure = ScanError(port.region, "launch-permissions", message, code, image_id=image.image_id)
            return [], [failure], None
        finally:
            self._progress.image_done(port.region)

    # --- fix -------------------------------------------------------------------------------------------

    def _apply_remedies(
        self, port: ScanPort, problems: Sequence[Problem], errors: list[ScanError], gone: set[str]
    ) -> set[Remedy]:
        """Apply each distinct remedy once; return those that succeeded."""
        remedies: dict[Remedy, Problem] = {}
        images_per_remedy: dict[Remedy, set[str]] = {}
        for problem in problems:
            if problem.remedy is not None:
                remedies.setdefault(problem.remedy, problem)
                if problem.image:
                    images_per_remedy.setdefault(problem.remedy, set()).add(problem.image.image_id)
        applied: set[Remedy] = set()
        ports = _Ports(port, self._replication, self._tagging, self._violations)

        def apply(item: tuple[Remedy, Problem]) -> None:
            remedy, problem = item
            try:
                remedy.apply(ports)
                applied.add(remedy)
            except ClientError as error:
                # One AMI's remedy failing as "gone": it was deregistered mid-scan. A remedy of several AMIs
                # (one CreateTags for many) fails whole when any one is gone: an error, so nothing is lost.
                alone = len(images_per_remedy.get(remedy, ())) <= 1
                if is_gone(error) and problem.image and not problem.snapshot_id and alone:
                    gone.add(problem.image.image_id)
                    return
                code, message = describe_error(error, port.region)
                if not alone:
                    message += f" (one call for {len(images_per_remedy[remedy])} AMIs; none changed: scan again)"
                image_id = problem.image.image_id if problem.image else None
                errors.append(ScanError(port.region, "fix", message, code, image_id, problem.snapshot_id))
            except (BotoCoreError, RuntimeError) as error:
                code, message = describe_error(error, port.region)
                image_id = problem.image.image_id if problem.image else None
                errors.append(ScanError(port.region, "fix", message, code, image_id, problem.snapshot_id))

        # Violation tags last: a DR copy made in the same sweep (CopyImageTags) would otherwise carry them or not,
        # depending on which call EC2 served first; after the copies, it never does (it gets its own).
        marks = [item for item in remedies.items() if isinstance(item[0], MarkViolations)]
        others = [item for item in remedies.items() if not isinstance(item[0], MarkViolations)]
        with _Pool(max_workers=self._concurrency, thread_name_prefix="amiguard-fix") as pool:
            list(pool.map(apply, others))
            list(pool.map(apply, marks))
        return applied

    def _finding(self, region: str, problem: Problem, applied: set[Remedy]) -> Finding:
        if problem.remedy is None:
            action = Action.NONE
        elif not self._fix:
            action = problem.remedy.would
        else:
            action = problem.remedy.done if problem.remedy in applied else Action.NONE
        verdict = problem.verdict
        return Finding(
            type=verdict.type,
            severity=verdict.severity,
            summary=verdict.summary,
            account=self._account,
            region=region,
            image_id=problem.image.image_id if problem.image else None,
            image_name=problem.image.name if problem.image else None,
            snapshot_id=problem.snapshot_id,
            action=action,
            evidence=verdict.evidence,
            detected_at=self._clock(),
            fix_failed=self._fix and problem.remedy is not None and problem.remedy not in applied,
        )


@dataclass
class _Listing:
    result: RegionResult
    port: ScanPort | None = None
    images: list[Image] = field(default_factory=list)
    errors: list[ScanError] = field(default_factory=list)
