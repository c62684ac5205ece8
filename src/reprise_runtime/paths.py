"""Where things are inside a reprise container (with fallbacks for running outside one)."""

from __future__ import annotations

import os
from pathlib import Path


def run_dir() -> Path:
    return Path(os.environ.get("REPRISE_RUN_DIR", "."))


def outputs_dir() -> Path:
    return Path(os.environ.get("REPRISE_OUTPUTS", str(run_dir() / "outputs")))


def checkpoints_dir() -> Path:
    return run_dir() / "checkpoints"


def config_path() -> Path:
    return Path(os.environ.get("REPRISE_CONFIG", "config.yaml"))


def seed() -> int | None:
    value = os.environ.get("REPRISE_SEED")
    return int(value) if value else None
