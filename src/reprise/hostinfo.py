"""What the host is: name, CPU, engine, and its GPUs as nvidia-smi reports them."""

from __future__ import annotations

import platform
import re
import shutil
import subprocess
from pathlib import Path
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


def gpus() -> dict[str, Any]:
    smi = shutil.which("nvidia-smi")
    if smi is None:
        return {"present": False, "gpus": []}
    try:
        query = subprocess.run(
            [smi, f"--query-gpu={GPU_QUERY}", "--format=csv,noheader,nounits"],
            capture_output=True,
            text=True,
            timeout=20,
            check=False,
        )
        header = subprocess.run([smi], capture_output=True, text=True, timeout=20, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return {"present": False, "gpus": [], "error": str(exc)}
    return {
        "present": True,
        "gpus": parse_nvidia_smi_csv(query.stdout),
        "cuda": parse_cuda_version(header.stdout),
    }


def cpu_model() -> str | None:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        return None
    return None


def os_name() -> str:
    """Kernel and distribution, cheaply (platform.platform() reads the interpreter binary)."""
    uname = platform.uname()
    pretty = ""
    try:
        for line in Path("/etc/os-release").read_text().splitlines():
            if line.startswith("PRETTY_NAME="):
                pretty = line.split("=", 1)[1].strip().strip('"')
    except OSError:
        pass
    return f"{uname.system} {uname.release}" + (f" ({pretty})" if pretty else "")


def describe_host(engine_version: str) -> dict[str, Any]:
    import os

    return {
        "hostname": platform.node(),
        "arch": platform.machine(),
        "os": os_name(),
        "cpu": cpu_model(),
        "cpu_count": os.cpu_count(),
        "docker_version": engine_version,
        "gpu": gpus(),
    }
