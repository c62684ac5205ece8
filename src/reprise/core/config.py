"""The run config: YAML in, typed ``a.b=value`` overrides applied, frozen YAML out. Pure."""

from __future__ import annotations

import copy
import difflib
import hashlib
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import yaml

from reprise.core.errors import ConfigError

_INT = re.compile(r"^[-+]?(0|[1-9][0-9_]*)$")
_FLOAT = re.compile(
    r"^[-+]?(((\d[\d_]*)?\.\d+|\d[\d_]*\.\d*)([eE][-+]?\d+)?|\d[\d_]*[eE][-+]?\d+)$"
)
# libyaml's C loader and dumper when PyYAML has them: the same results, several times faster.
_SafeLoader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_SafeDumper = getattr(yaml, "CSafeDumper", yaml.SafeDumper)
_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_\-]*$")
# Bounds on any YAML config, checked event by event before anything is built: libyaml's
# composer recurses in C (a deep nesting crashes the process), and flattening a config for a
# diff expands every alias.
MAX_DEPTH = 100
MAX_NODES = 1_000_000
MAX_TEXT = 16 << 20


@dataclass(frozen=True)
class Override:
    path: tuple[str, ...]
    value: Any
    add: bool
    raw: str = ""  # the value as written

    @property
    def key(self) -> str:
        return ".".join(self.path)


def load_config_text(text: str, *, source: str) -> dict[str, Any]:
    """Parse the user's own YAML config; the top level must be a mapping (an empty file is
    ``{}``). Anchors and aliases are allowed; nesting and size are bounded."""
    return _load(text, source=source, aliases=True)


def load_untrusted_config_text(text: str, *, source: str) -> dict[str, Any]:
    """Parse a config that is not the user's own file (one a job wrote, such as Hydra's
    composed config, or one a record or bundle holds): anchors and aliases are refused, and
    every value is plain data (dates, binary and sets become their text)."""
    data: dict[str, Any] = _plain(_load(text, source=source, aliases=False))
    return data


def _load(text: str, *, source: str, aliases: bool) -> dict[str, Any]:
    hint = "fix the file; `python -c 'import yaml,sys; yaml.safe_load(open(sys.argv[1]))' FILE` shows the same error"
    try:
        _check_shape(text, source=source, aliases=aliases)
        data = yaml.load(text, Loader=_SafeLoader)  # noqa: S506 - a safe loader
    except yaml.YAMLError as exc:
        where = ""
        mark = getattr(exc, "problem_mark", None)
        if mark is not None:
            where = f" at line {mark.line + 1}, column {mark.column + 1}"
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ConfigError(f"{source} is not valid YAML{where}: {problem}", hint=hint) from None
    except (ValueError, OverflowError) as exc:  # an integer of 5,000 digits, a 13th month
        raise ConfigError(f"{source} holds a value YAML cannot read: {exc}", hint=hint) from None
    except RecursionError:
        raise ConfigError(f"{source} is nested too deeply", hint=hint) from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(
            f"{source} must hold a mapping at its top level, not a {type(data).__name__}"
        )
    _check_keys(data, source=source, prefix="")
    return data


def _check_shape(text: str, *, source: str, aliases: bool) -> None:
    """Walk the YAML's events (libyaml's parser keeps its own stack: nothing recurses) and
    refuse, before anything is built, a text over MAX_TEXT, nesting over MAX_DEPTH, more than
    MAX_NODES nodes, and anchors or aliases unless ``aliases``."""
    if len(text) > MAX_TEXT:
        raise ConfigError(
            f"{source} is {len(text)} characters, over the {MAX_TEXT} limit for a config"
        )
    depth = nodes = 0
    for event in yaml.parse(text, Loader=_SafeLoader):
        if isinstance(event, yaml.CollectionEndEvent):
            depth -= 1
            continue
        if not isinstance(event, yaml.NodeEvent):
            continue
        if not aliases and (isinstance(event, yaml.AliasEvent) or event.anchor is not None):
            raise ConfigError(
                f"{source} uses YAML anchors or aliases (&name, *name, <<), which reprise does "
                "not expand in a config it did not get from you",
                hint="a config a job writes (Hydra's composed config) never needs them",
            )
        nodes += 1
        if nodes > MAX_NODES:
            raise ConfigError(f"{source} has more than {MAX_NODES} values")
        if isinstance(event, yaml.CollectionStartEvent):
            depth += 1
            if depth > MAX_DEPTH:
                raise ConfigError(f"{source} is nested more than {MAX_DEPTH} levels deep")


def _plain(value: Any) -> Any:
    """The value with every scalar a JSON one: YAML's dates, binary and sets become text."""
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_plain(item) for item in value]
    if value is None or isinstance(value, str | int | float):
        return value
    return str(value)


def _check_keys(data: Mapping[Any, Any], *, source: str, prefix: str) -> None:
    for key, value in data.items():
        if not isinstance(key, str):
            raise ConfigError(
                f"{source}: key {prefix}{key!r} is not a string; quote it", key=f"{prefix}{key}"
            )
        if isinstance(value, dict):
            _check_keys(value, source=source, prefix=f"{prefix}{key}.")


def parse_value(text: str) -> Any:
    """Type an override value: int, float, bool, null, a [list], a quoted or a plain string."""
    s = text.strip()
    low = s.lower()
    if low in ("true", "false"):
        return low == "true"
    if low in ("null", "none", "~"):
        return None
    if _INT.match(s):
        return int(s.replace("_", ""))
    if _FLOAT.match(s) or low in ("inf", "+inf", "-inf", "nan"):
        return float(s.replace("_", ""))
    if len(s) >= 2 and s[0] == s[-1] and s[0] in "'\"":
        return s[1:-1]
    if s.startswith("["):
        if not s.endswith("]"):
            raise ConfigError(f"list value {s!r} has no closing ']'")
        return [parse_value(part) for part in _split_list(s[1:-1])]
    return s


def _split_list(body: str) -> list[str]:
    parts: list[str] = []
    depth = 0
    quote = ""
    current = ""
    for ch in body:
        if quote:
            current += ch
            if ch == quote:
                quote = ""
            continue
        if ch in "'\"":
            quote = ch
        elif ch == "[":
            depth += 1
        elif ch == "]":
            depth -= 1
            if depth < 0:
                raise ConfigError(f"unbalanced ']' in list value [{body}]")
        elif ch == "," and depth == 0:
            parts.append(current)
            current = ""
            continue
        current += ch
    if quote or depth:
        raise ConfigError(f"unterminated quote or bracket in list value [{body}]")
    if current.strip() or parts:
        parts.append(current)
    if any(not p.strip() for p in parts):
        raise ConfigError(f"empty element in list value [{body}]")
    return parts


def parse_override(text: str) -> Override:
    """``a.b=value`` sets an existing key; ``+a.b=value`` adds a new one."""
    add = text.startswith("+")
    body = text[1:] if add else text
    if "=" not in body:
        raise ConfigError(
            f"override {text!r} is not KEY=VALUE",
            hint="write overrides as a.b=value (or +a.b=value to add a key)",
        )
    key, _, raw = body.partition("=")
    path = tuple(key.strip().split("."))
    if not key.strip() or not all(_KEY.match(part) for part in path):
        raise ConfigError(
            f"override {text!r} has a malformed key {key!r}",
            key=key,
            hint="keys are dotted names of letters, digits, '_' and '-', e.g. optim.lr=0.01",
        )
    return Override(path=path, value=parse_value(raw), add=add, raw=raw.strip())


def apply_overrides(config: Mapping[str, Any], overrides: Sequence[Override]) -> dict[str, Any]:
    """Return a new config with ``overrides`` applied; the input is left untouched."""
    result: dict[str, Any] = copy.deepcopy(dict(config))
    for ov in overrides:
        node: dict[str, Any] = result
        for i, part in enumerate(ov.path[:-1]):
            child = node.get(part)
            if child is None and ov.add and part not in node:
                child = node[part] = {}
            if not isinstance(child, dict):
                where = ".".join(ov.path[: i + 1])
                if part not in node:
                    raise _unknown(ov, node, part, where)
                raise ConfigError(
                    f"cannot set {ov.key}: {where} is a {type(child).__name__}, not a mapping",
                    key=ov.key,
                )
            node = child
        leaf = ov.path[-1]
        if ov.add and leaf in node:
            raise ConfigError(
                f"+{ov.key} adds a key that already exists",
                key=ov.key,
                hint=f"drop the '+' to change it: {ov.key}=...",
            )
        if not ov.add and leaf not in node:
            raise _unknown(ov, node, leaf, ov.key)
        node[leaf] = ov.value if ov.add else _retyped(ov, node[leaf])
    return result


def _kind(value: Any) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "list"
    if isinstance(value, dict):
        return "mapping"
    return type(value).__name__


def _retyped(ov: Override, current: Any) -> Any:
    """The override's value in the type the config already has for the key (an integer for
    a float, any scalar's text for a string); ConfigError when the two contradict."""
    new = ov.value
    if current is None or new is None:
        return new
    have, got = _kind(current), _kind(new)
    if have == got:
        return new
    if have == "number" and got == "integer":
        return float(new)
    if have == "string" and got in ("integer", "number", "boolean"):
        return ov.raw
    hint = f"give a {have} value, e.g. {ov.key}={_example(current)}"
    if have == "mapping":
        first = next(iter(current), "key")
        hint = f"{ov.key} is a mapping: set one of its keys, e.g. {ov.key}.{first}=..."
    raise ConfigError(
        f"override {ov.key}={ov.raw} gives a {got} where the config has a {have} ({current!r})",
        key=ov.key,
        hint=hint,
    )


def _example(value: Any) -> str:
    if isinstance(value, list):
        return "[1,2]"
    if isinstance(value, bool):
        return "true"
    return str(value)


def _unknown(ov: Override, node: Mapping[str, Any], part: str, where: str) -> ConfigError:
    close = difflib.get_close_matches(part, [str(k) for k in node], n=1)
    suggestion = (
        f"did you mean {where.rsplit('.', 1)[0] + '.' if '.' in where else ''}{close[0]}? "
        if close
        else ""
    )
    return ConfigError(
        f"unknown config key {where!r}",
        key=where,
        hint=f"{suggestion}to add a new key, write +{ov.key}=...",
    )


def dump_config(config: Mapping[str, Any]) -> str:
    """The frozen form: sorted keys, block style; the same config always gives the same text."""
    return yaml.dump(
        dict(config),
        Dumper=_SafeDumper,
        sort_keys=True,
        default_flow_style=False,
        allow_unicode=True,
    )


def config_hash(frozen_text: str) -> str:
    return "sha256:" + hashlib.sha256(frozen_text.encode("utf-8")).hexdigest()
