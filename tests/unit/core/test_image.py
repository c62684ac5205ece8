from __future__ import annotations

import dataclasses
import hashlib
import io
import tarfile
from pathlib import Path
from typing import Any

import pytest

from reprise.core.errors import ProjectError
from reprise.core.image import BasePython, ImageInputs, context_files, plan_image, write_tar
from reprise.core.templating import template_text
from reprise.core.workspace import SyncOptions

from ..golden import check_golden

BASE = "127.0.0.1:5000/reprise/base@sha256:" + "a" * 64
PYPROJECT: dict[str, Any] = {
    "project": {"name": "Demo_Project", "requires-python": ">=3.11", "dependencies": ["numpy"]},
    "tool": {"reprise": {"command": "python train.py"}},
}


def _inputs(**changes: object) -> ImageInputs:
    inputs = ImageInputs(
        project_name="Demo_Project",
        base_ref="127.0.0.1:5000/reprise/base:bookworm-python3",
        base_digest_ref=BASE,
        python=BasePython(managed=False, path="/usr/bin/python3", version="3.11.2"),
        pyproject=PYPROJECT,
        pyproject_bytes=b"[project]\nname='Demo_Project'\n",
        lock=b"version = 1\n",
        runtime_files={"sitecustomize.py": b"import x\n", "reprise_runtime/boot.py": b"pass\n"},
        uv_version="0.13.9",
        ca_bundle=False,
        wheelhouse=None,
    )
    return dataclasses.replace(inputs, **changes)  # type: ignore[arg-type]


def test_golden_dockerfile_system_python() -> None:
    plan = plan_image(_inputs(), template_text("Dockerfile.j2"))
    check_golden("Dockerfile.system-python", plan.dockerfile)


def test_golden_dockerfile_managed_python_ca_and_wheelhouse() -> None:
    """A workspace member with a console script, a dependency group and an extra."""
    inputs = _inputs(
        python=BasePython(managed=True, request=">=3.11"),
        ca_bundle=True,
        wheelhouse="/opt/wheels",
        member_pyprojects={"packages/a": b"[project]\nname = 'a'\n"},
        sync=SyncOptions(package="a", groups=("train",), default_groups=False, extras=("cuda",)),
        links={"bin/train-a": b"#!/opt/venv/bin/python\n", "lib/reprise-project.json": b"{}"},
    )
    plan = plan_image(inputs, template_text("Dockerfile.j2"))
    check_golden("Dockerfile.managed-python", plan.build_dockerfile)


def test_rendering_twice_is_identical() -> None:
    a = plan_image(_inputs(), template_text("Dockerfile.j2"))
    b = plan_image(_inputs(), template_text("Dockerfile.j2"))
    assert a == b


def test_tag_is_content_addressed() -> None:
    template = template_text("Dockerfile.j2")
    base = plan_image(_inputs(), template)
    assert base.tag.startswith("reprise/demo_project:")
    changed = {
        "lock": _inputs(lock=b"version = 2\n"),
        "base": _inputs(base_digest_ref=BASE.replace("a" * 64, "b" * 64)),
        "runtime": _inputs(runtime_files={"sitecustomize.py": b"import y\n"}),
        "uv": _inputs(uv_version="0.14.0"),
        "deps": _inputs(
            pyproject={**PYPROJECT, "project": {**PYPROJECT["project"], "dependencies": []}}
        ),
    }
    tags = {name: plan_image(inputs, template).tag for name, inputs in changed.items()}
    assert base.tag not in tags.values()
    assert len(set(tags.values())) == len(tags)


def test_unrelated_pyproject_sections_do_not_change_the_tag() -> None:
    template = template_text("Dockerfile.j2")
    other = {**PYPROJECT, "tool": {"reprise": {"command": "python other.py"}}}
    assert plan_image(_inputs(), template).tag == plan_image(_inputs(pyproject=other), template).tag


def test_ca_bundle_is_build_time_only_and_not_part_of_the_identity() -> None:
    plan = plan_image(_inputs(ca_bundle=True), template_text("Dockerfile.j2"))
    without = plan_image(_inputs(ca_bundle=False), template_text("Dockerfile.j2"))
    assert plan.tag == without.tag and plan.dockerfile == without.dockerfile
    assert "ca-bundle" not in plan.dockerfile
    build_stage, final_stage = plan.build_dockerfile.split("# ---- the final image", 1)
    assert "reprise-ca-bundle.pem" in build_stage
    assert "ca-bundle" not in final_stage
    assert "SSL_CERT_FILE" not in final_stage


def test_determinism_variables_are_baked_in() -> None:
    dockerfile = plan_image(_inputs(), template_text("Dockerfile.j2")).dockerfile
    final = dockerfile.split("# ---- the final image", 1)[1]
    assert "CUBLAS_WORKSPACE_CONFIG=:4096:8" in final
    assert "PYTHONHASHSEED=0" in final
    assert "#   USER         1000:1000" in final


def test_context_tar_is_deterministic(tmp_path: Path) -> None:
    uv = tmp_path / "uv"
    uv.write_bytes(b"#!/bin/sh\n")
    wheels = tmp_path / "wheels"
    (wheels / "sub").mkdir(parents=True)
    (wheels / "b.whl").write_bytes(b"b")
    (wheels / "sub" / "a.whl").write_bytes(b"a")
    inputs = _inputs(wheelhouse=str(wheels))
    plan = plan_image(inputs, template_text("Dockerfile.j2"))

    def tar_bytes() -> bytes:
        files = context_files(plan, inputs, uv_binary=uv, ca_bundle=None, wheelhouse=wheels)
        buf = io.BytesIO()
        write_tar(files, buf)
        return buf.getvalue()

    first = tar_bytes()
    uv.touch()  # a new mtime must not matter
    assert hashlib.sha256(first).digest() == hashlib.sha256(tar_bytes()).digest()
    with tarfile.open(fileobj=io.BytesIO(first)) as tar:
        members = tar.getmembers()
    names = [m.name for m in members]
    assert names == sorted(names)
    assert "reprise/wheelhouse/sub/a.whl" in names
    assert all(m.mtime == 0 and m.uid == 0 for m in members)
    assert next(m for m in members if m.name == "reprise/uv").mode == 0o755


@pytest.mark.parametrize("name", ["My Project!", "UPPER", "a/b"])
def test_repo_names_are_valid(name: str) -> None:
    from reprise.core.image import image_repo

    repo = image_repo(name)
    assert repo == repo.lower()
    assert " " not in repo and "!" not in repo


def test_golden_ci_workflow() -> None:
    from reprise.core.workflow import render_workflow

    text = render_workflow(
        runs=["20261123-141200-5f3a9c1e", "20261122-090000-00000000"],
        runs_dir="runs",
        runner=["self-hosted", "gpu"],
        cron="0 3 * * 1",
        registry="127.0.0.1:5000/team",
        install_spec="reprise==0.1.0",
        timeout_minutes=120,
    )
    check_golden("github-replay.yml", text)
    import yaml

    workflow = yaml.safe_load(text)
    run_step = workflow["jobs"]["replay"]["steps"][2]["run"]
    assert run_step.split()[:4] == [
        "reprise",
        "reproduce",
        "20261122-090000-00000000",
        "20261123-141200-5f3a9c1e",
    ]
    assert "--junit reprise-junit.xml" in run_step


def test_heavy_packages_are_installed_first_in_their_own_step_and_named_as_layers() -> None:
    from .test_layers import LOCK

    plan = plan_image(_inputs(lock=LOCK), template_text("Dockerfile.j2"))
    heavy_step = plan.dockerfile.index("COPY reprise/heavy/ /tmp/reprise-heavy/")
    assert heavy_step < plan.dockerfile.index("COPY project/ ./")  # lock changes keep it cached
    assert (
        " && uv pip install --python /opt/venv/bin/python --no-deps --compile-bytecode --no-index "
        "--find-links /opt/wheels -r /tmp/reprise-heavy/0.txt" in plan.dockerfile
    )
    assert plan.layers == (
        "package big-thing",
        "package nvidia-cublas-cu12",
        "package torch",
        "environment",
        "reprise",
    )
    assert set(plan.heavy_requirements) == {"0.txt", "1.txt"}
    small_change = LOCK.replace(b'version = "1.17.0"', b'version = "1.16.0"')
    again = plan_image(_inputs(lock=small_change), template_text("Dockerfile.j2"))
    assert again.heavy_requirements == plan.heavy_requirements and again.tag != plan.tag


def test_label_and_env_values_are_quoted_words() -> None:
    """A value in a LABEL or ENV line stays one quoted word: no line break, no closing quote,
    nothing for the builder to expand."""
    hostile = 'pkg-a"\nRUN touch /pwned # $HOME \\'
    plan = plan_image(_inputs(project_name=hostile), template_text("Dockerfile.j2"))
    lines = plan.dockerfile.splitlines()
    assert not any(line.startswith("RUN touch") for line in lines)
    assert 'org.reprise.project="pkg-a\\"\\nRUN touch /pwned # \\$HOME \\\\"' in plan.dockerfile
    python = BasePython(managed=False, path='/usr/bin/python3"\nRUN evil', version="3.11.2")
    with pytest.raises(ProjectError, match="the base image's Python"):
        plan_image(_inputs(python=python), template_text("Dockerfile.j2"))


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("base_ref", "x:1\nRUN evil"),
        ("base_digest_ref", BASE + "\nRUN evil"),
        ("wheelhouse", "/w\nRUN evil"),
        ("python", BasePython(managed=True, request=">=3.11\nRUN evil")),
    ],
)
def test_bare_values_with_a_line_break_are_refused(field: str, value: object) -> None:
    with pytest.raises(ProjectError, match="holds a line break or control character") as info:
        plan_image(_inputs(**{field: value}), template_text("Dockerfile.j2"))
    assert info.value.exit_code == 4
