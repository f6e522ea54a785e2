"""DynamoDB write units, computed from item sizes as DynamoDB bills them (moto reports no real capacity).

A :class:`WriteUnitMeter` hooks a botocore session's (or client's) DynamoDB calls, reads each written
item before and after the call through another client (its own calls are not metered), and adds up:

- 1 write unit per started KB of the larger of the item before and after (PutItem, UpdateItem, DeleteItem,
  BatchWriteItem requests); a failed conditional write still bills the item it read (at least 1);
- x2 on the table for every item of a TransactWriteItems (DynamoDB's two-phase price), cancelled or not;
- per global secondary index: 1 write per started KB of the index entry put (the row entered the index, or a
  projected attribute changed), 1 per entry deleted (it left), 2 when an index key changed.

Item size: attribute names plus values (strings and binaries by their bytes, numbers ~1 byte per 2 digits + 1,
booleans and nulls 1, lists and maps 3 + 1 per element), as the DynamoDB developer guide describes.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

KB = 1024


def value_size(value: dict[str, Any]) -> int:
    """Bytes of one low-level attribute value (``{"S": ...}``, ``{"N": ...}``, ...)."""
    [(kind, data)] = value.items()
    if kind == "S":
        return len(str(data).encode())
    if kind == "B":
        return len(data if isinstance(data, bytes | bytearray) else str(data).encode())
    if kind == "N":
        digits = str(data).lstrip("-").replace(".", "").lstrip("0") or "0"
        return math.ceil(len(digits) / 2) + 1
    if kind in ("BOOL", "NULL"):
        return 1
    if kind == "SS":
        return sum(len(item.encode()) for item in data)
    if kind == "NS":
        return sum(value_size({"N": item}) for item in data)
    if kind == "BS":
        return sum(len(item) for item in data)
    if kind == "L":
        return 3 + sum(1 + value_size(item) for item in data)
    if kind == "M":
        return 3 + sum(1 + len(name.encode()) + value_size(item) for name, item in data.items())
    raise ValueError(f"unknown DynamoDB type {kind}")


def item_size(item: dict[str, Any] | None) -> int:
    """Bytes of an item: its attribute names and values (0 for no item)."""
    return sum(len(name.encode()) + value_size(value) for name, value in (item or {}).items())


def units(size: int) -> int:
    return max(1, math.ceil(size / KB))


@dataclass(frozen=True)
class Index:
    name: str
    keys: tuple[str, ...]
    projection: str  # ALL | KEYS_ONLY | INCLUDE
    include: frozenset[str] = frozenset()


@dataclass
class Table:
    keys: tuple[str, ...]
    indexes: list[Index]


@dataclass
class WriteUnitMeter:
    """Counts the write units of every DynamoDB write a hooked client makes (see the module docstring)."""

    reader: Any  # a DynamoDB client on the same backend, not hooked
    total: int = 0
    by_operation: Counter[str] = field(default_factory=Counter)
    by_row: Counter[str] = field(default_factory=Counter)  # by the row's sort-key prefix (FINDING, DEDUP, REPLICA)
    _tables: dict[str, Table] = field(default_factory=dict)
    _before: list[tuple[str, str, dict[str, Any], dict[str, Any] | None, bool]] = field(default_factory=list)

    def register(self, events: Any) -> None:
        """Hook ``events`` (``session.events`` or ``client.meta.events``)."""
        events.register("before-parameter-build.dynamodb", self._on_request)
        events.register("after-call.dynamodb", self._on_response)

    def reset(self) -> None:
        self.total = 0
        self.by_operation.clear()
        self.by_row.clear()

    # --- hooks --------------------------------------------------------------------------------------------

    def _on_request(self, params: dict[str, Any], model: Any, **_: Any) -> None:
        writes = self._writes(model.name, params)
        self._before = [(kind, table, key, self._get(table, key), tx) for kind, table, key, tx in writes]

    def _on_response(self, model: Any, parsed: dict[str, Any], **_: Any) -> None:
        if not self._before:
            return
        failed = "Error" in parsed
        for operation, table, key, old, transaction in self._before:
            base, indexes = self._cost(table, key, old, None if failed else self._get(table, key), failed)
            cost = base * (2 if transaction else 1) + indexes
            self.total += cost
            self.by_operation[f"{model.name}:{operation}"] += cost
            self.by_row[_row_kind(key)] += cost
        self._before = []

    # --- pricing ------------------------------------------------------------------------------------------

    def _cost(
        self, table: str, key: dict[str, Any], old: dict[str, Any] | None, new: dict[str, Any] | None, failed: bool
    ) -> tuple[int, int]:
        """(write units on the table, write units on its indexes) of one item written."""
        if failed:
            return units(item_size(old)), 0
        base, cost = units(max(item_size(old), item_size(new))), 0
        schema = self._schema(table)
        for index in schema.indexes:
            before, after = self._entry(schema, index, old), self._entry(schema, index, new)
            if before is None and after is None:
                continue
            if before is None or after is None:
                cost += units(item_size(before or after))
            elif any(before[name] != after[name] for name in index.keys):
                cost += units(item_size(before)) + units(item_size(after))
            elif before != after:
                cost += units(item_size(after))
        return base, cost

    @staticmethod
    def _entry(schema: Table, index: Index, item: dict[str, Any] | None) -> dict[str, Any] | None:
        """What the index holds for ``item`` (None: the item is not in the index)."""
        if item is None or any(name not in item for name in index.keys):
            return None
        if index.projection == "ALL":
            return dict(item)
        names = set(schema.keys) | set(index.keys) | (index.include if index.projection == "INCLUDE" else set())
        return {name: value for name, value in item.items() if name in names}

    # --- plumbing -----------------------------------------------------------------------------------------

    def _writes(self, operation: str, params: dict[str, Any]) -> list[tuple[str, str, dict[str, Any], bool]]:
        """(kind, table, key, in a transaction) of every item the call writes."""
        if operation == "PutItem":
            return [("Put", params["TableName"], self._key_of(params["TableName"], params["Item"]), False)]
        if operation in ("UpdateItem", "DeleteItem"):
            return [(operation.removesuffix("Item"), params["TableName"], params["Key"], False)]
        if operation == "BatchWriteItem":
            writes = []
            for table, requests in params["RequestItems"].items():
                for request in requests:
                    if "PutRequest" in request:
                        writes.append(("Put", table, self._key_of(table, request["PutRequest"]["Item"]), False))
                    else:
                        writes.append(("Delete", table, request["DeleteRequest"]["Key"], False))
            return writes
        if operation == "TransactWriteItems":
            writes = []
            for entry in params["TransactItems"]:
                [(kind, body)] = entry.items()
                key = body["Key"] if "Key" in body else self._key_of(body["TableName"], body["Item"])
                writes.append((kind, body["TableName"], key, True))
            return writes
        return []

    def _schema(self, table: str) -> Table:
        if table not in self._tables:
            description = self.reader.describe_table(TableName=table)["Table"]
            indexes = [
                Index(
                    index["IndexName"],
                    tuple(key["AttributeName"] for key in index["KeySchema"]),
                    index["Projection"]["ProjectionType"],
                    frozenset(index["Projection"].get("NonKeyAttributes", [])),
                )
                for index in description.get("GlobalSecondaryIndexes", [])
            ]
            self._tables[table] = Table(tuple(key["AttributeName"] for key in description["KeySchema"]), indexes)
        return self._tables[table]

    def _key_of(self, table: str, item: dict[str, Any]) -> dict[str, Any]:
        return {name: item[name] for name in self._schema(table).keys}

    def _get(self, table: str, key: dict[str, Any]) -> dict[str, Any] | None:
        item: dict[str, Any] | None = self.reader.get_item(TableName=table, Key=key, ConsistentRead=True).get("Item")
        return item


def _row_kind(key: dict[str, Any]) -> str:
    """``FINDING``, ``DEDUP``, ``REPLICA``...: the prefix of the item's sort key (else its partition key)."""
    value = key.get("sk") or key.get("pk") or {}
    return str(next(iter(value.values()), "")).split("#", 1)[0]
