"""What this host is: name, CPU, OS, engine version, and its GPUs as nvidia-smi reports them."""

from __future__ import annotations

import os
import platform
import shutil
import subprocess
from pathlib import Path
from typing import Any

from reprise.core.hostinfo import GPU_QUERY, parse_cuda_version, parse_nvidia_smi_csv


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
    return {
        "hostname": platform.node(),
        "arch": platform.machine(),
        "os": os_name(),
        "cpu": cpu_model(),
        "cpu_count": os.cpu_count(),
        "docker_version": engine_version,
        "gpu": gpus(),
    }
