"""Fixed schema ids and lazy loading of the Avro schema files (no registry server).

Inputs: the `*.avsc` files shipped as package data of `schemas` (read with
`importlib.resources`). They are the single source of truth; this module only maps
`(kind, version)` to a fixed 4-byte schema id and to the file.

Guarantees:
- Nothing is read or parsed at import; each schema is parsed once per registry on first
  use and cached.
- Every id ever published stays in `SCHEMA_VERSIONS` (readers must keep old ids). A new
  version of a kind is a new file `kind.vN.avsc` with a NEW id; writers use the highest
  version of a kind, readers resolve any known writer id against their reader version
  (Avro schema resolution), so added-with-default fields work in both directions.
- `compatibility_problems(old, new)` checks the evolution rules of schemas/README.md.

Failure modes: `SchemaError` for unknown kinds/ids; `OSError`/`ValueError` from a broken
package install surface as `SchemaError` with the cause chained.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from importlib import resources
from typing import Any

import fastavro

__all__ = [
    "KINDS",
    "SCHEMA_VERSIONS",
    "SchemaError",
    "SchemaRegistry",
    "SchemaVersion",
    "compatibility_problems",
    "default_registry",
]

#: Message kinds carried as Avro (alerts are JSON, dead letters are the original bytes).
KINDS: tuple[str, ...] = ("frame_window", "offload_request", "result")


class SchemaError(Exception):
    """Bytes or a record that do not match the expected schema, or an unknown schema id.

    Raised by `schemas.encode` / `schemas.decode` and the registry. Consumers treat it as
    poison input (dead-letter, continue); producers treat it as a bug in their record.
    Operators: compare the producer's schema version with `schemas/registry.py`.
    """


@dataclass(frozen=True)
class SchemaVersion:
    """One published schema: its fixed id, kind, version and where its text lives.

    `resource` names a file in the `schemas` package; `document` (instead of a file) is
    for tests and migrations that register a schema at run time. `references` lists the
    `(kind, version)` of named types the schema uses (parsed first).
    """

    schema_id: int
    kind: str
    version: int
    resource: str | None = None
    references: tuple[tuple[str, int], ...] = ()
    document: Mapping[str, Any] | None = field(default=None, compare=False, hash=False)


#: Every schema id ever published. Append only; never reuse or remove an id.
SCHEMA_VERSIONS: tuple[SchemaVersion, ...] = (
    SchemaVersion(1, "frame_window", 1, "frame_window.v1.avsc"),
    SchemaVersion(2, "offload_request", 1, "offload_request.v1.avsc", (("frame_window", 1),)),
    SchemaVersion(3, "result", 1, "result.v1.avsc"),
)


def _read_resource(name: str) -> dict[str, Any]:
    try:
        text = resources.files("schemas").joinpath(name).read_text(encoding="utf-8")
        document = json.loads(text)
    except (OSError, ValueError) as exc:
        raise SchemaError(f"cannot load schema file {name!r}") from exc
    if not isinstance(document, dict):
        raise SchemaError(f"schema file {name!r} is not a JSON object")
    return document


class SchemaRegistry:
    """Maps schema ids and kinds to parsed Avro schemas, parsing each once on demand.

    `reader_versions` pins the version a reader resolves into (default: the highest
    known version of each kind); writers always use the highest version.
    """

    def __init__(
        self,
        versions: Iterable[SchemaVersion] = SCHEMA_VERSIONS,
        *,
        reader_versions: Mapping[str, int] | None = None,
    ) -> None:
        self._versions: dict[int, SchemaVersion] = {}
        self._by_kind: dict[tuple[str, int], SchemaVersion] = {}
        for version in versions:
            if version.schema_id in self._versions:
                raise SchemaError(f"duplicate schema id {version.schema_id}")
            if (version.kind, version.version) in self._by_kind:
                raise SchemaError(f"duplicate version {version.kind} v{version.version}")
            if not 0 <= version.schema_id < 2**32:
                raise SchemaError(f"schema id {version.schema_id} does not fit 4 bytes")
            self._versions[version.schema_id] = version
            self._by_kind[(version.kind, version.version)] = version
        self._reader_versions = dict(reader_versions or {})
        self._parsed: dict[int, dict[str, Any]] = {}
        self._lock = threading.Lock()

    @property
    def versions(self) -> tuple[SchemaVersion, ...]:
        """All registered schema versions, by id."""
        return tuple(self._versions[i] for i in sorted(self._versions))

    def with_version(
        self, version: SchemaVersion, *, reader_versions: Mapping[str, int] | None = None
    ) -> SchemaRegistry:
        """A new registry that also knows `version` (the original is unchanged)."""
        return SchemaRegistry(
            [*self._versions.values(), version],
            reader_versions=reader_versions
            if reader_versions is not None
            else self._reader_versions,
        )

    def entry(self, schema_id: int) -> SchemaVersion:
        """The `SchemaVersion` with this id; `SchemaError` when unknown."""
        try:
            return self._versions[schema_id]
        except KeyError:
            raise SchemaError(f"unknown schema id {schema_id}") from None

    def latest(self, kind: str) -> SchemaVersion:
        """The highest version of `kind` (what writers use)."""
        candidates = [v for v in self._versions.values() if v.kind == kind]
        if not candidates:
            raise SchemaError(f"unknown message kind {kind!r}")
        return max(candidates, key=lambda v: v.version)

    def reader_entry(self, kind: str) -> SchemaVersion:
        """The version of `kind` that decoded records are resolved into."""
        pinned = self._reader_versions.get(kind)
        if pinned is None:
            return self.latest(kind)
        try:
            return self._by_kind[(kind, pinned)]
        except KeyError:
            raise SchemaError(f"unknown reader version {kind} v{pinned}") from None

    def document(self, schema_id: int) -> dict[str, Any]:
        """The schema's JSON document (a fresh copy, safe to modify)."""
        entry = self.entry(schema_id)
        if entry.document is not None:
            return json.loads(json.dumps(entry.document))  # type: ignore[no-any-return]
        if entry.resource is None:
            raise SchemaError(f"schema id {schema_id} has neither resource nor document")
        return _read_resource(entry.resource)

    def parsed(self, schema_id: int) -> dict[str, Any]:
        """The fastavro-parsed schema for `schema_id` (cached)."""
        cached = self._parsed.get(schema_id)
        if cached is not None:
            return cached
        with self._lock:
            cached = self._parsed.get(schema_id)
            if cached is None:
                cached = self._parse(schema_id)
                self._parsed[schema_id] = cached
        return cached

    def _parse(self, schema_id: int) -> dict[str, Any]:
        entry = self.entry(schema_id)
        named: dict[str, Any] = {}
        try:
            for kind, version in entry.references:
                ref = self._by_kind.get((kind, version))
                if ref is None:
                    raise SchemaError(
                        f"{entry.kind} v{entry.version} references unknown {kind} v{version}"
                    )
                fastavro.parse_schema(self.document(ref.schema_id), named_schemas=named)
            parsed = fastavro.parse_schema(self.document(schema_id), named_schemas=named)
        except SchemaError:
            raise
        except Exception as exc:  # fastavro raises assorted types for a bad schema
            raise SchemaError(f"schema id {schema_id} does not parse") from exc
        if not isinstance(parsed, dict):
            raise SchemaError(f"schema id {schema_id} is not a record schema")
        return parsed


_default_lock = threading.Lock()
_default: SchemaRegistry | None = None


def default_registry() -> SchemaRegistry:
    """The process-wide registry of `SCHEMA_VERSIONS` (created on first use)."""
    global _default
    if _default is None:
        with _default_lock:
            if _default is None:
                _default = SchemaRegistry()
    return _default


def _canonical(avro_type: Any) -> str:
    return json.dumps(avro_type, sort_keys=True, separators=(",", ":"))


def _strip_docs(avro_type: Any) -> Any:
    """Remove `doc` attributes so a documentation edit is not a type change."""
    if isinstance(avro_type, dict):
        return {k: _strip_docs(v) for k, v in avro_type.items() if k != "doc"}
    if isinstance(avro_type, list):
        return [_strip_docs(v) for v in avro_type]
    return avro_type


def compatibility_problems(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[str]:
    """Violations of the evolution rules going from record schema `old` to `new`.

    Rules (schemas/README.md): the record keeps its name and namespace; no field is
    removed, renamed or retyped; every added field has a default. Nested records are
    checked recursively; other type changes are reported as retypes. Empty list = OK.
    """
    return _record_problems(_strip_docs(dict(old)), _strip_docs(dict(new)), str(old.get("name")))


def _record_problems(old: dict[str, Any], new: dict[str, Any], path: str) -> list[str]:
    problems: list[str] = []
    for attr in ("type", "name", "namespace"):
        if old.get(attr) != new.get(attr):
            problems.append(f"{path}: {attr} changed {old.get(attr)!r} -> {new.get(attr)!r}")
    if problems or old.get("type") != "record":
        return problems
    old_fields = {f["name"]: f for f in old.get("fields", [])}
    new_fields = {f["name"]: f for f in new.get("fields", [])}
    for name, old_field in old_fields.items():
        new_field = new_fields.get(name)
        if new_field is None:
            problems.append(f"{path}.{name}: removed or renamed")
            continue
        old_type, new_type = old_field["type"], new_field["type"]
        if (
            isinstance(old_type, dict)
            and isinstance(new_type, dict)
            and old_type.get("type") == "record"
        ):
            problems.extend(_record_problems(old_type, new_type, f"{path}.{name}"))
        elif _canonical(old_type) != _canonical(new_type):
            problems.append(
                f"{path}.{name}: retyped {_canonical(old_type)} -> {_canonical(new_type)}"
            )
    for name, new_field in new_fields.items():
        if name not in old_fields and "default" not in new_field:
            problems.append(f"{path}.{name}: added without a default")
    return problems
