"""Step fingerprints: after every K-th optimizer step, a hash of the parameters it updates, in
``logs/fingerprints.jsonl``, so that a reproduction that diverges says at which step.

Installed by the runtime's boot as a global optimizer step hook (no change to the user's
script). The hash is computed where the parameters are (on the GPU for a GPU model): each
parameter's bits, as integers, reduced to two int64 sums (plain and position-weighted;
integer sums are exact and order-free, so the result is deterministic); only those two
numbers per parameter cross to the host, once per fingerprint. A step's time is measured
between hooks, for the runtime record.

``REPRISE_FINGERPRINT_EVERY``: K (a positive integer; reprise passes the run's setting, and a
reproduction the recorded one, so both write the same steps) or ``off``. Step 1 is always
fingerprinted. Only the process of rank 0 (``RANK``) writes.

``REPRISE_STOP_AFTER_STEP``: N, set by `reprise reproduce --bisect` for its partial reruns: the
process ends (SystemExit 0, so the runtime record is still written) right after fingerprinting
optimizer step N.
"""

from __future__ import annotations

import hashlib
import json
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

DEFAULT_EVERY = 50
DETAIL_EVERY = 1  # per-parameter hashes (8 hex digits each) every this many fingerprints
_WEIGHT_MOD = 65521


class Fingerprints:
    """The optimizer hook: counts steps, times them, hashes the parameters every K steps."""

    def __init__(self, path: Path | None, every: int, stop_after: int | None = None) -> None:
        self.path = path
        self.every = every
        self.stop_after = stop_after
        self.step = 0
        self.count = 0
        self.last: float | None = None
        self.step_times: list[float] = []
        self.hash_times: list[float] = []
        self._weights: dict[tuple[str, int], Any] = {}

    def __call__(self, optimizer: Any, args: Any, kwargs: Any) -> None:
        now = time.perf_counter()
        if self.last is not None and len(self.step_times) < 100_000:
            self.step_times.append(now - self.last)
        self.step += 1
        if self.step % self.every == 0 or self.step == 1:
            started = time.perf_counter()
            self.write(optimizer)
            self.hash_times.append(time.perf_counter() - started)
        self.last = time.perf_counter()
        if self.stop_after is not None and self.step >= self.stop_after:
            if self.step % self.every != 0 and self.step != 1:
                self.write(optimizer)  # the step asked for is always fingerprinted
            print(f"reprise runtime: stopped after step {self.step} (bisect)", file=sys.stderr)
            raise SystemExit(0)

    def params(self, optimizer: Any) -> list[tuple[str, Any]]:
        """Each parameter the optimizer updates, by its name in a watched model (see
        ``watch``), else by its place: group g, parameter i."""
        return [
            (_names.get(id(p)) or f"g{g}.p{i}", p)
            for g, group in enumerate(optimizer.param_groups)
            for i, p in enumerate(group["params"])
        ]

    def _weight(self, device: Any, n: int) -> Any:
        import torch

        key = (str(device), n)
        weight = self._weights.get(key)
        if weight is None:
            weight = torch.arange(n, device=device, dtype=torch.int64) % _WEIGHT_MOD + 1
            if n * 8 <= 64 << 20:  # cache up to 64 MiB per shape
                self._weights[key] = weight
        return weight

    def sums(self, tensor: Any) -> Any:
        """Two int64 sums of the tensor's bits, on its device."""
        import torch

        t = tensor.detach().contiguous().reshape(-1)
        if t.dtype.is_floating_point or t.dtype.is_complex:
            bits = {8: torch.int64, 4: torch.int32, 2: torch.int16, 1: torch.int8}
            t = (
                t.view(bits[t.element_size()])
                if t.element_size() in bits
                else t.to(torch.float64).view(torch.int64)
            )
        t = t.to(torch.int64)
        return torch.stack([t.sum(), (t * self._weight(t.device, t.numel())).sum()])

    def write(self, optimizer: Any) -> None:
        import torch

        named = self.params(optimizer)
        if not named or self.path is None:
            return
        with torch.no_grad():
            parts = [self.sums(p) for _, p in named]
            if len({str(t.device) for t in parts}) == 1:
                sums = torch.stack(parts).cpu().tolist()  # one transfer for the whole model
            else:
                sums = torch.stack([t.cpu() for t in parts]).tolist()
        per = {
            name: hashlib.blake2b(f"{a},{b},{tuple(p.shape)}".encode(), digest_size=4).hexdigest()
            for (name, p), (a, b) in zip(named, sums, strict=True)
        }
        record: dict[str, Any] = {
            "step": self.step,
            "params": hashlib.blake2b(
                json.dumps(per, sort_keys=True).encode(), digest_size=16
            ).hexdigest(),
        }
        if self.count % DETAIL_EVERY == 0:
            record["per_param"] = per
        self.count += 1
        with self.path.open("a", encoding="utf-8") as fh:
            fh.write(json.dumps(record, sort_keys=True) + "\n")

    def summary(self) -> dict[str, Any]:
        out: dict[str, Any] = {"steps": self.step, "every": self.every}
        if self.step_times:
            out["step_time_s"] = round(statistics.median(self.step_times), 9)
        if self.hash_times:
            out["fingerprint_time_s"] = round(statistics.median(self.hash_times), 9)
        return out


_active: Fingerprints | None = None
_names: dict[int, str] = {}


def watch(model: Any) -> None:
    """Name the model's parameters in the fingerprints (``layer1.weight``, not ``g0.p2``)."""
    for name, param in model.named_parameters():
        _names[id(param)] = name


def install(torch: Any, environ: os._Environ[str] | dict[str, str]) -> Fingerprints | None:
    """Register the hook on every optimizer of this process (the first process only writes
    the file: workers do not step optimizers)."""
    global _active
    text = environ.get("REPRISE_FINGERPRINT_EVERY", str(DEFAULT_EVERY)).strip().lower()
    run_dir = environ.get("REPRISE_RUN_DIR")
    stop_text = environ.get("REPRISE_STOP_AFTER_STEP", "").strip()
    stop = int(stop_text) if stop_text.isdigit() and int(stop_text) > 0 else None
    first = environ.get("RANK", "0") == "0"
    if text == "off" or not run_dir or (not first and stop is None):
        return None
    every = int(text) if text.isdigit() and int(text) > 0 else DEFAULT_EVERY
    # The other ranks of a bisect pass count their steps to stop with rank 0 (each would
    # otherwise wait in its next collective for a rank that is gone); they write nothing.
    path = Path(run_dir) / "logs" / "fingerprints.jsonl" if first else None
    from torch.optim.optimizer import register_optimizer_step_post_hook

    hook = Fingerprints(path, every, stop)
    register_optimizer_step_post_hook(hook)
    _active = hook
    return hook


def active() -> Fingerprints | None:
    return _active
