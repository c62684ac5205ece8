"""Parsing what nvidia-smi reports about a host's GPUs. Pure."""

from __future__ import annotations

import re
from typing import Any

GPU_QUERY = "index,name,uuid,driver_version,compute_cap,memory.total"


def parse_nvidia_smi_csv(text: str) -> list[dict[str, Any]]:
    """Parse ``nvidia-smi --query-gpu=GPU_QUERY --format=csv,noheader,nounits``."""
    gpus = []
    for line in text.strip().splitlines():
        parts = [p.strip() for p in line.split(",")]
        if len(parts) != 6:
            continue
        index, name, uuid, driver, cap, memory = parts
        gpus.append(
            {
                "index": int(index) if index.isdigit() else index,
                "name": name,
                "uuid": uuid,
                "driver": driver,
                "compute_capability": cap,
                "memory_mib": int(memory) if memory.isdigit() else memory,
            }
        )
    return gpus


def parse_cuda_version(text: str) -> str | None:
    match = re.search(r"CUDA Version\s*:\s*([\d.]+)", text)
    return match.group(1) if match else None
