"""The run record (run.json): its published schema, and the one function that reads it.

A record may come from a bundle or a run directory someone else wrote: it is hostile input.
:func:`parse_record` bounds its size and nesting, validates its shape against
``schema/run-v1.schema.json``, then checks every name that becomes a path, a tag or a host
action against :mod:`reprise.core.names`. Nothing uses a record before it has passed.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from functools import cache
from importlib import resources
from typing import Any

from reprise.core import keys, names
from reprise.core.errors import InvalidNameError, RecordError

MAX_RECORD_BYTES = 16 << 20
FINAL_STATES = frozenset({"succeeded", "failed", "interrupted", "lost"})
STATES = FINAL_STATES | {"running"}


def load_json(raw: bytes | str, *, limit: int, what: str) -> Any:
    """Parse JSON of at most ``limit`` bytes; ValueError (with ``what``) for anything else,
    too deep nesting included."""
    if len(raw) > limit:
        raise ValueError(f"{what} is {len(raw)} bytes, over the {limit}-byte limit")
    try:
        return json.loads(raw)
    except RecursionError:
        raise ValueError(f"{what} is nested too deeply") from None
    except ValueError as exc:
        raise ValueError(f"{what} is not valid JSON: {exc}") from None


def schema_text() -> str:
    return (resources.files("reprise.core") / "schema" / "run-v1.schema.json").read_text()


@cache
def _validator() -> Callable[[Any], Any]:
    import fastjsonschema

    validate: Callable[[Any], Any] = fastjsonschema.compile(json.loads(schema_text()))
    return validate


def _check_names(record: dict[str, Any]) -> None:
    names.run_id(record["run_id"], "run_id")
    names.experiment(record["experiment"], "experiment")
    names.image_id(record["image"]["id"], "image.id")
    names.commit(record["code"]["commit"], "code.commit")
    names.subdir(record["code"].get("subdir") or "", "code.subdir")
    names.subdir(record["code"].get("workdir") or "", "code.workdir")
    if record.get("name") is not None:
        names.run_name(record["name"], "name")
    if record.get("sweep"):
        names.sweep_id(record["sweep"]["id"], "sweep.id")
    for tag in record.get("tags") or []:
        names.run_tag(tag, "tags")
    if record.get("reproduces") is not None:
        names.run_id(record["reproduces"], "reproduces")
    for name in record.get("data") or {}:
        names.dataset(name, "data")
    environment = record["environment"]
    for name in list(environment.get("user") or {}) + list(environment.get("secrets") or []):
        names.env_name(name, "environment")
    executor = record.get("executor") or {}
    if executor.get("host") is not None:
        names.host(executor["host"], "executor.host")
    image = record["image"]
    if image.get("repo_digest") is not None:
        names.reference(image["repo_digest"], "image.repo_digest")
    if image.get("registry") is not None:
        names.registry(image["registry"], "image.registry")
    if image.get("base_ref") is not None:
        names.reference(image["base_ref"], "image.base_ref")


def validate_record(data: Any, *, source: str) -> dict[str, Any]:
    """``data`` as a run record, or RecordError naming what is wrong and where."""
    import fastjsonschema

    try:
        _validator()(data)
    except fastjsonschema.JsonSchemaValueException as exc:
        raise RecordError(
            f"{source} is not a valid run record: {exc.message}", path=source, field=exc.name
        ) from None
    except fastjsonschema.JsonSchemaException as exc:
        raise RecordError(f"{source} is not a valid run record: {exc}", path=source) from None
    try:
        _check_names(data)
    except InvalidNameError as exc:
        raise RecordError(
            f"{source} is not a valid run record: {exc.message}", path=source, field=exc.field
        ) from None
    return dict(data)


def parse_record(raw: bytes | str, *, source: str) -> dict[str, Any]:
    """Read a run record from its bytes: bounded, parsed, validated."""
    try:
        data = load_json(raw, limit=MAX_RECORD_BYTES, what=source)
    except ValueError as exc:
        raise RecordError(str(exc), path=source) from None
    return validate_record(data, source=source)


def record_files() -> frozenset[str]:
    """Files reprise writes itself at a run directory's top."""
    return keys.RUN_RECORD_FILES
