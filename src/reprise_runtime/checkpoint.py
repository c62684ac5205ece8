"""Full-state checkpoints, so that a resumed run continues exactly as an uninterrupted one.

A checkpoint holds whatever of the model, optimizer, LR scheduler, AMP grad scaler and data
order (a ``ResumableSampler``) it is given, the step and epoch, the count of optimizer steps
(for the step fingerprints), and every RNG state: Python, NumPy, torch CPU and every CUDA
device. ``Checkpoints`` keeps the usual layout in ``checkpoints/``:

    ckpt = Checkpoints(every=100, keep_last=3, best=("val_loss", "min"))
    start = ckpt.resume(model=model, optimizer=opt, scheduler=sched, sampler=sampler)
    for step in range(start.step + 1, total + 1):
        ...
        ckpt.step(step, epoch=epoch, metrics={"val_loss": v}, model=model, optimizer=opt, ...)

``last.pt`` after every save, ``step_<N>.pt`` every ``every`` steps (the newest ``keep_last``
kept), ``best.pt`` when the declared metric improves. ``reprise resume RUN`` starts a new run
with the interrupted run's files in place and REPRISE_RESUME=1; ``resume()`` then loads
``last.pt`` (and trims the logs to its step); in a fresh run it returns step 0.
"""

from __future__ import annotations

import json
import os
import random
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from reprise_runtime.paths import checkpoints_dir, run_dir


def rng_state() -> dict[str, Any]:
    state: dict[str, Any] = {"python": random.getstate()}
    if "numpy" in sys.modules:
        import numpy as np

        state["numpy"] = np.random.get_state()
    if "torch" in sys.modules:
        import torch

        state["torch"] = torch.get_rng_state()
        if torch.cuda.is_available():
            state["torch_cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    random.setstate(state["python"])
    if "numpy" in state:
        import numpy as np

        np.random.set_state(state["numpy"])
    if "torch" in state:
        import torch

        torch.set_rng_state(state["torch"])
        if "torch_cuda" in state and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(state["torch_cuda"])


_STATEFUL = ("model", "optimizer", "scheduler", "scaler", "sampler")


def _optimizer_steps() -> int | None:
    from reprise_runtime import fingerprint

    active = fingerprint.active()
    return active.step if active is not None else None


def _watch(model: Any) -> None:
    if model is not None and hasattr(model, "named_parameters"):
        from reprise_runtime import fingerprint

        fingerprint.watch(model)


def save_checkpoint(
    path: str | Path,
    *,
    model: Any = None,
    optimizer: Any = None,
    scheduler: Any = None,
    scaler: Any = None,
    sampler: Any = None,
    step: int | None = None,
    epoch: int | None = None,
    extra: dict[str, Any] | None = None,
) -> Path:
    """Save with torch.save, atomically (a temporary file, then rename)."""
    import torch

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload: dict[str, Any] = {
        "rng": rng_state(),
        "step": step,
        "epoch": epoch,
        "optimizer_steps": _optimizer_steps(),
        "extra": extra or {},
    }
    objects = {"model": model, "optimizer": optimizer, "scheduler": scheduler}
    objects.update(scaler=scaler, sampler=sampler)
    for name, obj in objects.items():
        if obj is not None:
            payload[name] = obj.state_dict()
    _watch(model)
    tmp = path.with_name(f".{path.name}.tmp")
    torch.save(payload, tmp)
    tmp.replace(path)
    return path


def load_checkpoint(
    path: str | Path,
    *,
    model: Any = None,
    optimizer: Any = None,
    scheduler: Any = None,
    scaler: Any = None,
    sampler: Any = None,
    restore_rng: bool = True,
) -> dict[str, Any]:
    """Load into what is given; the RNG states (and the step fingerprints' count) too."""
    import torch

    payload: dict[str, Any] = torch.load(Path(path), map_location="cpu", weights_only=False)
    objects = {"model": model, "optimizer": optimizer, "scheduler": scheduler}
    objects.update(scaler=scaler, sampler=sampler)
    for name, obj in objects.items():
        if obj is not None and name in payload:
            obj.load_state_dict(payload[name])
    if restore_rng and "rng" in payload:
        set_rng_state(payload["rng"])
    _watch(model)
    from reprise_runtime import fingerprint

    active = fingerprint.active()
    if active is not None and payload.get("optimizer_steps") is not None:
        active.step = int(payload["optimizer_steps"])
    return payload


def trim_jsonl(path: Path, step: int) -> None:
    """Drop the records of ``path`` past ``step`` (what an interrupted run logged after its
    last checkpoint, which the resumed run logs again)."""
    if not path.is_file():
        return
    kept = []
    for line in path.read_text(encoding="utf-8").splitlines(keepends=True):
        try:
            record_step = json.loads(line).get("step")
        except (ValueError, AttributeError):
            continue  # a line cut short by the interruption
        if not line.endswith("\n"):
            continue
        if record_step is None or int(record_step) <= step:
            kept.append(line)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text("".join(kept), encoding="utf-8")
    tmp.replace(path)


@dataclass
class Resumed:
    """Where a run (re)starts: step and epoch 0 for a fresh run."""

    step: int = 0
    epoch: int = 0
    path: Path | None = None
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class Checkpoints:
    """The layout of ``checkpoints/``: last, best, periodic, keep-last-N."""

    every: int = 0
    keep_last: int = 0  # 0: keep every periodic checkpoint
    best: tuple[str, str] | None = None  # (metric, "min" or "max")
    folder: Path = field(default_factory=checkpoints_dir)
    best_value: float | None = None

    def resume_point(self) -> Path | None:
        """``last.pt`` when this run resumes an interrupted one (REPRISE_RESUME), else None."""
        last = self.folder / "last.pt"
        return last if os.environ.get("REPRISE_RESUME") == "1" and last.is_file() else None

    def resume(self, **objects: Any) -> Resumed:
        path = self.resume_point()
        if path is None:
            return Resumed()
        payload = load_checkpoint(path, **objects)
        step = int(payload.get("step") or 0)
        extra = dict(payload.get("extra") or {})
        self.best_value = extra.get("reprise_best_value")
        trim_jsonl(run_dir() / "logs" / "metrics.jsonl", step)
        optimizer_steps = payload.get("optimizer_steps")
        if optimizer_steps is not None:  # fingerprints count optimizer steps, not the user's
            trim_jsonl(run_dir() / "logs" / "fingerprints.jsonl", int(optimizer_steps))
        print(f"reprise runtime: resumed from {path.name} at step {step}", file=sys.stderr)
        return Resumed(step, int(payload.get("epoch") or 0), path, extra)

    def _improved(self, metrics: dict[str, float]) -> bool:
        if self.best is None or self.best[0] not in metrics:
            return False
        value = float(metrics[self.best[0]])
        if self.best_value is None:
            return True
        return value < self.best_value if self.best[1] == "min" else value > self.best_value

    def step(
        self,
        step: int,
        *,
        epoch: int | None = None,
        metrics: dict[str, float] | None = None,
        force: bool = False,
        **objects: Any,
    ) -> Path | None:
        """Save what is due at ``step``: a periodic checkpoint (then ``last.pt``), and
        ``best.pt`` when the metric improved; ``force`` saves ``last.pt`` regardless."""
        periodic = bool(self.every) and step % self.every == 0
        improved = self._improved(metrics or {})
        if improved:
            self.best_value = float((metrics or {})[self.best[0]])  # type: ignore[index]
        if not (periodic or improved or force):
            return None
        extra = {"reprise_best_value": self.best_value}
        saved = None
        if improved:
            saved = save_checkpoint(
                self.folder / "best.pt", step=step, epoch=epoch, extra=extra, **objects
            )
        if periodic:
            saved = save_checkpoint(
                self.folder / f"step_{step}.pt", step=step, epoch=epoch, extra=extra, **objects
            )
            self._prune()
        if periodic or force:
            saved = save_checkpoint(
                self.folder / "last.pt", step=step, epoch=epoch, extra=extra, **objects
            )
        return saved

    def _prune(self) -> None:
        if not self.keep_last:
            return
        periodic = sorted(
            (p for p in self.folder.glob("step_*.pt") if p.stem[5:].isdigit()),
            key=lambda p: int(p.stem[5:]),
        )
        for old in periodic[: -self.keep_last]:
            old.unlink()
