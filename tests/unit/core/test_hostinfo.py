from __future__ import annotations

from reprise.core.hostinfo import parse_cuda_version, parse_nvidia_smi_csv


def test_parse_nvidia_smi_csv() -> None:
    text = (
        "0, NVIDIA H100 80GB HBM3, GPU-1234, 550.54.15, 9.0, 81559\n"
        "1, NVIDIA H100 80GB HBM3, GPU-5678, 550.54.15, 9.0, 81559\n"
    )
    gpus = parse_nvidia_smi_csv(text)
    assert gpus[0] == {
        "index": 0,
        "name": "NVIDIA H100 80GB HBM3",
        "uuid": "GPU-1234",
        "driver": "550.54.15",
        "compute_capability": "9.0",
        "memory_mib": 81559,
    }
    assert gpus[1]["uuid"] == "GPU-5678"
    assert parse_nvidia_smi_csv("garbage\n") == []


def test_parse_cuda_version() -> None:
    header = "| NVIDIA-SMI 550.54.15   Driver Version: 550.54.15   CUDA Version: 12.4     |"
    assert parse_cuda_version(header) == "12.4"
    assert parse_cuda_version("nothing") is None
