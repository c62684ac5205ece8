"""The final image's layers: the split by rate of change, derived from uv.lock alone, and
the pieces that make a rebuild the same bytes."""

from __future__ import annotations

import json

from reprise.core.layers import (
    Layer,
    compare_layers,
    environment_verdict,
    heavy_packages,
    heavy_requirements,
    image_config,
    image_id,
    index_args,
    owners,
    passwd_lines,
    tar_header,
)

LOCK = b"""
version = 1
requires-python = ">=3.11"

[[package]]
name = "demo"
version = "0.1.0"
source = { virtual = "." }
dependencies = [
    { name = "six" },
    { name = "torch" },
]

[[package]]
name = "nvidia-cublas-cu12"
version = "12.4.5.8"
source = { registry = "https://pypi.org/simple" }
wheels = [{ url = "https://x/nvidia_cublas.whl", hash = "sha256:11", size = 363439104 }]

[[package]]
name = "six"
version = "1.17.0"
source = { registry = "https://pypi.org/simple" }
wheels = [{ url = "https://x/six.whl", hash = "sha256:22", size = 11050 }]

[[package]]
name = "big-thing"
version = "2.0"
source = { registry = "https://pypi.org/simple" }
wheels = [{ url = "https://x/big.whl", hash = "sha256:33", size = 70000000 }]

[[package]]
name = "torch"
version = "2.13.0+cpu"
source = { registry = "/opt/wheels" }
dependencies = [
    { name = "nvidia-cublas-cu12", marker = "platform_machine == 'x86_64' and sys_platform == 'linux'" },
]
wheels = [{ path = "/opt/wheels/torch-2.13.0+cpu-cp311-cp311-manylinux_2_28_x86_64.whl" }]
"""


def test_heavy_packages_come_from_the_lock_by_name_and_wheel_size() -> None:
    heavy = heavy_packages(LOCK)
    assert [p.name for p in heavy] == ["big-thing", "nvidia-cublas-cu12", "torch"]
    assert heavy[1].marker == "(platform_machine == 'x86_64' and sys_platform == 'linux')"
    assert heavy[2].hashes == () and heavy[2].index == "/opt/wheels"
    assert [p.layer for p in heavy] == [
        "package big-thing",
        "package nvidia-cublas-cu12",
        "package torch",
    ]


def test_heavy_requirements_pin_each_registry_apart() -> None:
    heavy = heavy_packages(LOCK)
    files = heavy_requirements(heavy)
    assert files == {
        "0.txt": "torch==2.13.0+cpu\n",
        "1.txt": (
            "big-thing==2.0 \\\n    --hash=sha256:33\n"
            "nvidia-cublas-cu12==12.4.5.8 ; (platform_machine == 'x86_64' and sys_platform == 'linux') \\\n"
            "    --hash=sha256:11\n"
        ),
    }
    assert index_args(heavy) == [
        ["--no-index", "--find-links", "/opt/wheels"],
        ["--index-url", "https://pypi.org/simple"],
    ]


def test_files_belong_to_the_package_whose_record_lists_them() -> None:
    found = owners(
        {
            "lib/python3.11/site-packages/torch-2.13.0+cpu.dist-info": (
                "torch/__init__.py,sha256=a,1\n../../../bin/torchrun,sha256=b,2\n"
                '"torch/odd,name.py",sha256=c,3\n'
            ),
            "lib/python3.11/site-packages/six-1.17.0.dist-info": "six.py,sha256=d,4\n",
        },
        "lib/python3.11/site-packages",
    )
    assert found == {
        "lib/python3.11/site-packages/torch/__init__.py": "torch",
        "bin/torchrun": "torch",
        "lib/python3.11/site-packages/torch/odd,name.py": "torch",
        "lib/python3.11/site-packages/six.py": "six",
    }


def test_the_jobs_user_is_added_once() -> None:
    passwd, group = passwd_lines("root:x:0:0::/root:/bin/sh\n", "root:x:0:\n", 1000, 1000)
    assert passwd.endswith("reprise:x:1000:1000:reprise:/home/reprise:/bin/sh\n")
    assert group == "root:x:0:\nreprise:x:1000:\n"
    assert passwd_lines(passwd, group, 1000, 1000) == (passwd, group)


def test_headers_and_config_carry_no_time_owner_or_order_of_the_build() -> None:
    header = tar_header("opt/venv/x.py", size=3)
    assert header == tar_header("opt/venv/x.py", size=3) and b"root" not in header
    base = {
        "Config": {"Env": ["PATH=/bin", "A=1"], "Labels": {"z": "1"}},
        "Created": "2024-01-01T00:00:00Z",
    }
    layers = [Layer("environment", "sha256:" + "a" * 64, 10, {"six": "1.17.0 abc"})]
    one = image_config(
        base,
        ["sha256:" + "b" * 64],
        layers,
        env={"PATH": "/v/bin"},
        labels={"a": "2"},
        user="1000:1000",
        workdir="/w",
    )
    two = image_config(
        base,
        ["sha256:" + "b" * 64],
        layers,
        env={"PATH": "/v/bin"},
        labels={"a": "2"},
        user="1000:1000",
        workdir="/w",
    )
    assert one == two and image_id(one) == image_id(two)
    doc = json.loads(one)
    assert doc["created"] == "2024-01-01T00:00:00Z"
    assert doc["config"]["Env"] == ["PATH=/v/bin", "A=1"]
    assert doc["rootfs"]["diff_ids"] == ["sha256:" + "b" * 64, "sha256:" + "a" * 64]


def test_a_changed_wheel_names_its_layer_and_package() -> None:
    recorded = [
        {"name": "package torch", "diff_id": "sha256:1", "packages": {"torch": "2.13.0 aaa"}},
        {"name": "environment", "diff_id": "sha256:2", "packages": {"six": "1.17.0 bbb"}},
    ]
    rebuilt = [
        recorded[0],
        {**recorded[1], "diff_id": "sha256:3", "packages": {"six": "1.16.0 ccc"}},
    ]
    found = compare_layers(recorded, rebuilt)
    assert found["layer"] == 1 and found["name"] == "environment"
    assert found["packages"] == {"six": {"recorded": "1.17.0 bbb", "rebuilt": "1.16.0 ccc"}}
    assert compare_layers(recorded, recorded) == {"identical": True}
    verdict = environment_verdict(
        {"id": "sha256:a", "layers": recorded}, {"id": "sha256:b", "layers": rebuilt}
    )
    assert verdict["verdict"] == "differs"
    assert verdict["proven"] == (
        "the first layer that differs is 'environment': packages six (1.17.0 bbb -> 1.16.0 ccc)"
    )
    same = environment_verdict({"id": "sha256:a", "layers": recorded}, {"id": "sha256:a"})
    assert same["verdict"] == "identical"
    old = environment_verdict({"id": "sha256:a"}, {"id": "sha256:b", "layers": rebuilt})
    assert old["verdict"] == "unknown"


def test_bytecode_goes_with_its_source() -> None:
    from reprise.core.layers import layer_of

    owner = {"lib/python3.11/site-packages/torch/nn/functional.py": "torch"}
    pyc = "lib/python3.11/site-packages/torch/nn/__pycache__/functional.cpython-311.pyc"
    assert layer_of(pyc, owner, {"torch"}) == "package torch"
    assert layer_of("lib/python3.11/site-packages/other.py", owner, {"torch"}) == "environment"
