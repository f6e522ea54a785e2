"""What the runtime asks of botocore, read from its syntax tree: the services it makes clients for, and every
operation, paginator and waiter it calls on them.

A receiver is a client when the code says so: a parameter or attribute annotated with a ``mypy_boto3_*``
client type (``ec2: EC2Client``), or a value made by ``boto3.client("x")``, ``<anything>.client("x")`` or a
:class:`ClientFactory` method (``clients.ec2(region)``, the method's ``self._client("ec2", ...)``), kept in a
local or a ``self.`` attribute. A receiver annotated with any other type, or made by a class
(``Ec2Images(...)``), is not. A call ``x.y(...)`` on a receiver of neither kind, where ``y`` is the
snake_case name of an operation of a ``watched`` service, is *unresolved*: the check cannot tell which
model it needs, so the caller is asked to annotate it.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

FACTORY = "ClientFactory"
CLIENT_MAKERS = frozenset({"client"})  # boto3.client, Session.client, ClientFactory.client
WRAPPERS = frozenset({"cache", "lru_cache", "partial"})  # a wrapped callable returns what it returns


@dataclass(frozen=True)
class Site:
    path: Path
    line: int

    def __str__(self) -> str:
        return f"{self.path}:{self.line}"


@dataclass(frozen=True)
class Call:
    """``client.<method>(...)`` (kind ``method``), ``get_paginator("name")`` or ``get_waiter("name")``."""

    service: str
    kind: str  # "method" | "paginator" | "waiter"
    name: str  # the snake_case method or paginator name, or the waiter's name as written
    site: Site


@dataclass
class Scan:
    services: dict[str, list[Site]] = field(default_factory=dict)  # every service a client is made for
    calls: list[Call] = field(default_factory=list)
    dynamic: list[Site] = field(default_factory=list)  # a client made for a service not written as a literal
    resources: list[Site] = field(default_factory=list)  # boto3 resources: their calls are not read
    unresolved: list[tuple[str, Site]] = field(default_factory=list)  # operation-named calls on unknown receivers


# A receiver's kind: ("client", service), OTHER (known not to be a client), or None (unknown).
Kind = tuple[str, str] | None
OTHER: Kind = ("other", "")


def _literal(node: ast.expr | None) -> str | None:
    return node.value if isinstance(node, ast.Constant) and isinstance(node.value, str) else None


def _service_argument(call: ast.Call) -> ast.expr | None:
    for keyword in call.keywords:
        if keyword.arg == "service_name":
            return keyword.value
    return call.args[0] if call.args else None


def _is_factory(node: ast.ClassDef, factories: set[str]) -> bool:
    return node.name == FACTORY or any(
        (base.id if isinstance(base, ast.Name) else base.attr if isinstance(base, ast.Attribute) else "") in factories
        for base in node.bases
    )


def factory_methods(trees: Iterable[ast.Module]) -> tuple[dict[str, str], set[str]]:
    """``ClientFactory``'s (and subclasses') methods that return one service's client → that service."""
    classes = [node for tree in trees for node in ast.walk(tree) if isinstance(node, ast.ClassDef)]
    factories: set[str] = set()
    while True:  # subclasses of subclasses, in any order
        found = {cls.name for cls in classes if _is_factory(cls, factories)} - factories
        if not found:
            break
        factories |= found
    methods: dict[str, str] = {}
    for cls in classes:
        if cls.name not in factories:
            continue
        for method in cls.body:
            if not isinstance(method, ast.FunctionDef):
                continue
            for node in ast.walk(method):
                if (
                    isinstance(node, ast.Call)
                    and isinstance(node.func, ast.Attribute)
                    and node.func.attr == "_client"
                    and (service := _literal(_service_argument(node)))
                ):
                    methods[method.name] = service
    return methods, factories


class _Scanner:
    def __init__(self, scan: Scan, methods: dict[str, str], factories: set[str], watched: frozenset[str]) -> None:
        self.scan, self.methods, self.factories, self.watched = scan, methods, factories, watched
        self.returns: dict[str, Kind] = {}

    def declare_returns(self, trees: Iterable[ast.Module]) -> None:
        """Every function's declared return kind, by name; a name declared with different kinds is unknown."""
        declared: dict[str, set[Kind]] = {}
        for tree in trees:
            self.imports(tree)
            for node in ast.walk(tree):
                if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.returns is not None:
                    declared.setdefault(node.name, set()).add(self.annotation(node.returns))
        self.returns = {name: kinds.pop() for name, kinds in declared.items() if len(kinds) == 1 and None not in kinds}
        self.returns = {name: kind for name, kind in self.returns.items() if name not in self.methods}

    def imports(self, tree: ast.Module) -> None:
        self.client_types: dict[str, str] = {}  # EC2Client -> ec2
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("mypy_boto3_"):
                service = (node.module or "").removeprefix("mypy_boto3_").split(".")[0].replace("_", "-")
                for alias in node.names:
                    if alias.name.endswith("Client"):
                        self.client_types[alias.asname or alias.name] = service

    def module(self, path: Path, tree: ast.Module) -> None:
        self.path = path
        self.imports(tree)
        self.body(tree.body, {}, {}, in_factory=False)

    # --- kinds ------------------------------------------------------------------------------------------

    def annotation(self, node: ast.expr | None) -> Kind:
        if node is None:
            return None
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            try:
                node = ast.parse(node.value, mode="eval").body
            except SyntaxError:
                return None
        names = [
            n.id if isinstance(n, ast.Name) else n.attr
            for n in ast.walk(node)
            if isinstance(n, ast.Name | ast.Attribute)
        ]
        services = {self.client_types[name] for name in names if name in self.client_types}
        if len(services) == 1:
            return ("client", services.pop())
        return None if not names or "Any" in names or services else OTHER

    def kind(self, node: ast.expr, scope: dict[str, Kind], attrs: dict[str, Kind]) -> Kind:
        if isinstance(node, ast.Name):
            return scope.get(node.id)
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "self":
            return attrs.get(node.attr)
        if isinstance(node, ast.Call):
            func = node.func
            if isinstance(func, ast.Attribute):
                if func.attr in CLIENT_MAKERS and (service := _literal(_service_argument(node))):
                    return ("client", service)
                if func.attr in self.methods:
                    return ("client", self.methods[func.attr])
            name = func.id if isinstance(func, ast.Name) else func.attr if isinstance(func, ast.Attribute) else ""
            if name in self.returns:  # declared by a function of the scanned code
                return self.returns[name]
            if name[:1].isupper():
                return OTHER  # a class: an adapter or a value, not a client
            if name in WRAPPERS and node.args:
                return self.kind(node.args[0], scope, attrs)
            callee = self.kind(func, scope, attrs)
            if callee is not None:  # a Callable[..., X] parameter or attribute: X
                return callee
            if isinstance(func, ast.Attribute) and self.kind(func.value, scope, attrs) == OTHER:
                return OTHER  # a non-client's methods give non-clients (unless declared otherwise, above)
        return None

    # --- walking ----------------------------------------------------------------------------------------

    def body(
        self, statements: list[ast.stmt], scope: dict[str, Kind], attrs: dict[str, Kind], *, in_factory: bool
    ) -> None:
        for statement in statements:
            if isinstance(statement, ast.ClassDef):
                self.klass(statement)
            elif isinstance(statement, ast.FunctionDef | ast.AsyncFunctionDef):
                self.function(statement, dict(scope), attrs, in_factory=in_factory)
            else:
                self.statement(statement, scope, attrs, in_factory=in_factory)

    def klass(self, node: ast.ClassDef) -> None:
        attrs: dict[str, Kind] = {}
        in_factory = node.name in self.factories
        methods = [item for item in node.body if isinstance(item, ast.FunctionDef | ast.AsyncFunctionDef)]
        for method in methods:  # first what each method stores on self (or a property returns), then the calls
            if any(isinstance(d, ast.Name) and d.id == "property" for d in method.decorator_list):
                attrs[method.name] = self.annotation(method.returns)
            scope = self.parameters(method)
            for statement in ast.walk(method):
                self.assign(statement, scope, attrs)
        self.body(node.body, {}, attrs, in_factory=in_factory)

    def parameters(self, node: ast.FunctionDef | ast.AsyncFunctionDef) -> dict[str, Kind]:
        arguments = [*node.args.posonlyargs, *node.args.args, *node.args.kwonlyargs]
        return {arg.arg: self.annotation(arg.annotation) for arg in arguments}

    def function(
        self,
        node: ast.FunctionDef | ast.AsyncFunctionDef,
        scope: dict[str, Kind],
        attrs: dict[str, Kind],
        *,
        in_factory: bool,
    ) -> None:
        scope.update(self.parameters(node))
        for statement in ast.walk(node):
            self.assign(statement, scope, attrs)
        self.body(node.body, scope, attrs, in_factory=in_factory)

    def assign(self, node: ast.AST, scope: dict[str, Kind], attrs: dict[str, Kind]) -> None:
        if isinstance(node, ast.AnnAssign):
            targets, kind = [node.target], self.annotation(node.annotation)
            if kind is None and node.value is not None:
                kind = self.kind(node.value, scope, attrs)
        elif isinstance(node, ast.Assign):
            targets, kind = node.targets, self.kind(node.value, scope, attrs)
        else:
            return
        for target in targets:
            if isinstance(target, ast.Name):
                scope[target.id] = kind if kind is not None else scope.get(target.id)
            elif isinstance(target, ast.Attribute) and isinstance(target.value, ast.Name) and target.value.id == "self":
                attrs[target.attr] = kind if kind is not None else attrs.get(target.attr)

    def statement(self, node: ast.stmt, scope: dict[str, Kind], attrs: dict[str, Kind], *, in_factory: bool) -> None:
        for call in (n for n in ast.walk(node) if isinstance(n, ast.Call)):  # lambdas' too, in this scope
            self.call(call, scope, attrs, in_factory=in_factory)

    def call(self, node: ast.Call, scope: dict[str, Kind], attrs: dict[str, Kind], *, in_factory: bool) -> None:
        func, site = node.func, Site(self.path, node.lineno)
        if not isinstance(func, ast.Attribute):
            return
        made = self.kind(node, scope, attrs)
        if made is not None and made[0] == "client":
            self.scan.services.setdefault(made[1], []).append(site)
        elif func.attr in CLIENT_MAKERS and not in_factory and _service_argument(node) is not None:
            self.scan.dynamic.append(site)
        if func.attr == "resource" and _service_argument(node) is not None:
            self.scan.resources.append(site)
        receiver = self.kind(func.value, scope, attrs)
        if receiver is not None and receiver[0] == "client":
            service = receiver[1]
            if func.attr in ("get_paginator", "get_waiter") and (name := _literal(_service_argument(node))):
                self.scan.calls.append(Call(service, func.attr.removeprefix("get_"), name, site))
            else:
                self.scan.calls.append(Call(service, "method", func.attr, site))
        elif receiver is None and (func.attr in self.watched or func.attr in ("get_paginator", "get_waiter")):
            self.scan.unresolved.append((f"{ast.unparse(func.value)}.{func.attr}", site))


def sources(*roots: Path) -> Iterator[Path]:
    for root in roots:
        yield from sorted(path for path in root.rglob("*.py") if "__pycache__" not in path.parts)


def scan(paths: Iterable[Path], watched: frozenset[str], relative_to: Path | None = None) -> Scan:
    """Scan ``paths``; ``watched``: the method names whose unknown receivers are reported as unresolved."""
    parsed = [(path, ast.parse(path.read_text(encoding="utf-8"), filename=str(path))) for path in paths]
    methods, factories = factory_methods(tree for _, tree in parsed)
    result = Scan()
    scanner = _Scanner(result, methods, factories, watched)
    scanner.declare_returns(tree for _, tree in parsed)
    for path, tree in parsed:
        shown = path.relative_to(relative_to) if relative_to else path
        for cls in (node for node in ast.walk(tree) if isinstance(node, ast.ClassDef) and node.name in factories):
            for method in cls.body:  # what the factory can make counts, called or not
                if isinstance(method, ast.FunctionDef) and method.name in methods:
                    result.services.setdefault(methods[method.name], []).append(Site(shown, method.lineno))
        scanner.module(shown, tree)
    return result
