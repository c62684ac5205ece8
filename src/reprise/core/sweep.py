"""Sweeps: `reprise run -m` overrides in Hydra's multirun grammar, expanded to one override
list per run. Pure.

The subset of Hydra's grammar reprise takes (https://hydra.cc/docs/advanced/override_grammar/extended/):

- ``key=a,b,c``: one run per value (a comma inside quotes or brackets does not split:
  ``key=[1,2],[3,4]`` is two list values);
- ``key=choice(a,b,c)``: the same;
- ``key=range(stop)``, ``range(start,stop)``, ``range(start,stop,step)``: Python's range
  (stop excluded), integers or numbers;
- ``+key=...``: adds the key in every run, as a single override does;
- anything else is a value every run gets.

Runs are the product of the swept keys in the order given, the first key varying slowest
(as Hydra's basic sweeper). Hydra's other sweep functions (interval, glob, sort, shuffle,
tag) are refused by name.
"""

from __future__ import annotations

import itertools
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass

from reprise.core.config import parse_override, parse_value
from reprise.core.errors import UsageError

MAX_RUNS = 1000
_FUNCTION = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*)\((.*)\)$", re.DOTALL)
_UNSUPPORTED = ("interval", "glob", "sort", "shuffle", "tag", "extend_list")
_HINT = "sweeps take key=a,b,c, key=choice(a,b) and key=range(start,stop[,step])"


@dataclass(frozen=True)
class Swept:
    """One override of a sweep: its key as written (with a leading '+' when it adds the
    key) and the values, as override text, each run takes in turn."""

    key: str
    values: tuple[str, ...]


def parse_sweep_override(text: str) -> Swept:
    """``key=a,b`` → Swept('key', ('a', 'b')); a plain ``key=v`` is a sweep of one value."""
    if "=" not in text:
        raise UsageError(f"sweep override {text!r} is not KEY=VALUES", hint=_HINT)
    key, _, body = text.partition("=")
    body = body.strip()
    match = _FUNCTION.match(body)
    if match and match.group(1) in ("range", "choice", *_UNSUPPORTED):
        function, inner = match.group(1), match.group(2)
        if function in _UNSUPPORTED:
            raise UsageError(f"{text!r}: {function}() sweeps are not supported", hint=_HINT)
        items = _split(inner, text)
        values = _range(items, text) if function == "range" else items
    elif body == "":
        values = [""]  # key= : the empty value, as a single override takes it
    else:
        values = _split(body, text)
    if not values:
        raise UsageError(f"sweep override {text!r} gives no values", hint=_HINT)
    for value in values:
        parse_override(f"{key}={value}")  # the key's and each value's own errors, now
    return Swept(key=key.strip(), values=tuple(values))


def _split(body: str, text: str) -> list[str]:
    """Split at commas outside quotes and brackets; an empty element is an error."""
    parts: list[str] = []
    current: list[str] = []
    closers = {"[": "]", "(": ")", "{": "}"}
    stack: list[str] = []
    quote = ""
    escaped = False
    for ch in body:
        if escaped:
            current.append(ch)
            escaped = False
            continue
        if ch == "\\" and not quote:
            escaped = True  # Hydra's \, keeps a comma in a value
            continue
        if quote:
            current.append(ch)
            if ch == quote:
                quote = ""
            continue
        if ch in "'\"":
            quote = ch
        elif ch in closers:
            stack.append(closers[ch])
        elif ch in ")]}":
            if not stack or stack.pop() != ch:
                raise UsageError(f"sweep override {text!r}: unbalanced {ch!r}", hint=_HINT)
        elif ch == "," and not stack:
            parts.append("".join(current).strip())
            current = []
            continue
        current.append(ch)
    if quote or stack or escaped:
        raise UsageError(f"sweep override {text!r}: unterminated quote or bracket", hint=_HINT)
    parts.append("".join(current).strip())
    if any(not p for p in parts):
        raise UsageError(f"sweep override {text!r} has an empty value", hint=_HINT)
    return parts


def _range(items: Sequence[str], text: str) -> list[str]:
    numbers = []
    for item in items:
        value = parse_value(item)
        if (
            isinstance(value, bool)
            or not isinstance(value, int | float)
            or not math.isfinite(value)
        ):
            raise UsageError(f"{text!r}: range() takes numbers, not {item!r}", hint=_HINT)
        numbers.append(value)
    if not 1 <= len(numbers) <= 3:
        raise UsageError(f"{text!r}: range() takes 1 to 3 numbers", hint=_HINT)
    start, stop, step = (0, numbers[0], 1) if len(numbers) == 1 else (*numbers[:2], 1)
    if len(numbers) == 3:
        step = numbers[2]
    if step == 0:
        raise UsageError(f"{text!r}: range() step must not be 0", hint=_HINT)
    count = max(0, math.ceil(round((stop - start) / step, 9)))  # 0.1 steps land on stop
    if count > MAX_RUNS:
        raise UsageError(f"{text!r} gives {count} values; a sweep has at most {MAX_RUNS} runs")
    values = [start + i * step for i in range(count)]
    if all(isinstance(n, int) for n in numbers):
        return [str(int(v)) for v in values]
    return [repr(float(round(v, 12))) for v in values]


def expand(overrides: Sequence[str], *, seed_flag: bool = False) -> list[tuple[str, ...]]:
    """Every run's overrides, in Hydra's order; refused beyond MAX_RUNS runs, and when
    ``seed_flag`` (--seed, which would win over every run's seed) meets a swept seed."""
    swept = [parse_sweep_override(o) for o in overrides]
    keys = [s.key.lstrip("+") for s in swept]
    if seed_flag and any(
        k == "seed" and len(s.values) > 1 for k, s in zip(keys, swept, strict=True)
    ):
        raise UsageError(
            "--seed would give every run of the sweep the same seed, whatever seed=... sweeps",
            hint="drop --seed (seed=1,2,3 sets each run's seed), or stop sweeping seed",
        )
    repeated = sorted({k for k in keys if keys.count(k) > 1})
    if repeated:
        raise UsageError(f"sweep sets {', '.join(repeated)} more than once", hint=_HINT)
    total = math.prod(len(s.values) for s in swept)
    if total > MAX_RUNS:
        raise UsageError(
            f"the sweep would start {total} runs; at most {MAX_RUNS}",
            hint="sweep fewer values, or split it into several sweeps",
        )
    return [
        tuple(f"{s.key}={v}" for s, v in zip(swept, combo, strict=True))
        for combo in itertools.product(*(s.values for s in swept))
    ]


def label(overrides: Sequence[str], swept_keys: Sequence[str]) -> str:
    """The overrides that vary across the sweep, for a progress line."""
    chosen = [o for o in overrides if o.partition("=")[0].lstrip("+") in swept_keys]
    return " ".join(chosen) or "(no overrides)"


def varying(overrides: Sequence[str]) -> list[str]:
    """The keys given more than one value."""
    return [s.key.lstrip("+") for s in map(parse_sweep_override, overrides) if len(s.values) > 1]
