"""Full-state checkpoints: model, optimizer, step, and every RNG state, so a resumed run
continues exactly as an uninterrupted one would."""

from __future__ import annotations

import random
import sys
from pathlib import Path
from typing import Any


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


def save_checkpoint(
    path: str | Path,
    *,
    model: Any = None,
    optimizer: Any = None,
    step: int | None = None,
    extra: dict[str, Any] | None = None,
) -> Path:
    """Save with torch.save, atomically (temp file, then rename)."""
    import torch

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload: dict[str, Any] = {"rng": rng_state(), "step": step, "extra": extra or {}}
    if model is not None:
        payload["model"] = model.state_dict()
    if optimizer is not None:
        payload["optimizer"] = optimizer.state_dict()
    tmp = path.with_name(f".{path.name}.tmp")
    torch.save(payload, tmp)
    tmp.replace(path)
    return path


def load_checkpoint(
    path: str | Path, *, model: Any = None, optimizer: Any = None, restore_rng: bool = True
) -> dict[str, Any]:
    import torch

    payload: dict[str, Any] = torch.load(Path(path), map_location="cpu", weights_only=False)
    if model is not None and "model" in payload:
        model.load_state_dict(payload["model"])
    if optimizer is not None and "optimizer" in payload:
        optimizer.load_state_dict(payload["optimizer"])
    if restore_rng and "rng" in payload:
        set_rng_state(payload["rng"])
    return payload
