"""reprise's small in-image runtime.

Inside a reprise container, every Python process is seeded before user code runs (see
``reprise_runtime.boot``, loaded by the image's sitecustomize). Scripts that want more can use:

    from reprise_runtime import log_metrics, save_checkpoint, load_checkpoint, outputs_dir
    from reprise_runtime import Checkpoints, ResumableSampler, loader, watch

This package has no dependencies beyond the standard library; NumPy and torch are used when the
image has them.
"""

from __future__ import annotations

from reprise_runtime.checkpoint import Checkpoints, load_checkpoint, save_checkpoint
from reprise_runtime.data import ResumableSampler, loader
from reprise_runtime.fingerprint import watch
from reprise_runtime.metrics import MetricsLogger, log_metrics
from reprise_runtime.paths import checkpoints_dir, config_path, outputs_dir, run_dir, seed

__all__ = [
    "Checkpoints",
    "MetricsLogger",
    "ResumableSampler",
    "checkpoints_dir",
    "config_path",
    "load_checkpoint",
    "loader",
    "log_metrics",
    "outputs_dir",
    "run_dir",
    "save_checkpoint",
    "seed",
    "watch",
]
