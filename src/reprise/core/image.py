"""The image a project runs in: inputs -> Dockerfile text -> content-addressed tag. Pure.

The tag is a hash of everything that defines the image (rendered Dockerfile, uv.lock, the
dependency section of pyproject.toml, the base digest, reprise's runtime files), so an
unchanged project maps to an existing image and no build is needed.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import re
import tarfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from reprise import __version__
from reprise.core import keys
from reprise.core.errors import ProjectError, SettingsError
from reprise.core.templating import render
from reprise.core.workspace import LockedPackage, SyncOptions

SPEC_HASH_LENGTH = 20
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


@dataclass(frozen=True)
class BasePython:
    """How the image gets Python: the base image's own interpreter, or one uv installs."""

    managed: bool
    path: str | None = None
    version: str | None = None
    request: str | None = None


@dataclass(frozen=True)
class ImageInputs:
    project_name: str
    base_ref: str
    base_digest_ref: str
    python: BasePython
    pyproject: Mapping[str, Any]
    pyproject_bytes: bytes
    lock: bytes
    runtime_files: Mapping[str, bytes]
    uv_version: str
    ca_bundle: bool
    wheelhouse: str | None
    # Workspace members (not the root): folder relative to the root -> pyproject.toml.
    member_pyprojects: Mapping[str, bytes] = field(default_factory=dict)
    member_sections: Mapping[str, Any] = field(default_factory=dict)
    sync: SyncOptions = field(default_factory=SyncOptions)
    # Files that link the project's own packages to the code (see core.workspace).
    links: Mapping[str, bytes] = field(default_factory=dict)


@dataclass(frozen=True)
class ImagePlan:
    dockerfile: str  # the image's identity: recorded in runs, hashed into the tag
    build_dockerfile: str  # what the engine builds (plus build-time-only settings)
    tag: str
    spec_hash: str
    base_digest: str
    lock_hash: str
    deps_hash: str
    runtime_hash: str
    dockerfile_hash: str
    # The heavy packages' pinned requirements, one file per registry (core.layers), and the
    # names of the layers reprise adds to the base, in order.
    heavy_requirements: Mapping[str, str] = field(default_factory=dict)
    layers: tuple[str, ...] = ()

    @property
    def build_labels(self) -> dict[str, str]:
        """Labels that cannot sit in the Dockerfile itself (they hash it)."""
        return {
            keys.LABEL_DOCKERFILE_HASH: self.dockerfile_hash,
            keys.LABEL_SPEC_HASH: self.spec_hash,
        }


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def determinism_env() -> dict[str, str]:
    """Variables baked into every image; each removes a source of run-to-run difference."""
    return {
        # cuBLAS picks a fixed workspace, so its reductions are deterministic (needed by
        # torch.use_deterministic_algorithms on CUDA >= 10.2).
        "CUBLAS_WORKSPACE_CONFIG": ":4096:8",
        # Same str/bytes hashes, so same set/dict iteration order, in every process.
        "PYTHONHASHSEED": "0",
        # TF32 matmul/conv off: full fp32, as on the GPU the run may be reproduced on.
        "NVIDIA_TF32_OVERRIDE": "0",
        "TF_DETERMINISTIC_OPS": "1",
        "TF_CUDNN_DETERMINISTIC": "1",
        # Output reaches the log as it happens; no .pyc writes on the read-only code.
        "PYTHONUNBUFFERED": "1",
        "PYTHONDONTWRITEBYTECODE": "1",
        "LANG": "C.UTF-8",
        "LC_ALL": "C.UTF-8",
        "TZ": "UTC",
    }


def image_env(python: BasePython) -> dict[str, str]:
    env = determinism_env()
    path = f"{keys.CONTAINER_VENV}/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
    env.update(
        {
            "HOME": "/home/reprise",
            "PATH": path,
            "VIRTUAL_ENV": keys.CONTAINER_VENV,
            # reprise's runtime (its sitecustomize seeds every Python process and puts the
            # project's own packages, from the code at the commit, on sys.path).
            "PYTHONPATH": keys.CONTAINER_RUNTIME_LIB,
        }
    )
    return dict(sorted(env.items()))


def dependency_section(pyproject: Mapping[str, Any]) -> dict[str, Any]:
    """The parts of pyproject.toml that decide what uv installs."""
    project = pyproject.get("project") or {}
    tool = pyproject.get("tool") or {}
    return {
        "project": {
            k: project.get(k)
            for k in ("name", "requires-python", "dependencies", "optional-dependencies")
        },
        "dependency-groups": pyproject.get("dependency-groups"),
        "tool.uv": tool.get("uv"),
    }


def torch_base_mismatch(
    lock: Mapping[str, LockedPackage], base_env: Mapping[str, str]
) -> str | None:
    """Whether the lock's torch is built for a different device than the base image offers:
    a CUDA torch on a base without CUDA, or a CPU torch on a CUDA base."""
    torch = lock.get("torch")
    if torch is None or not torch.version:
        return None
    cuda_base = any(k in base_env for k in ("CUDA_VERSION", "NV_CUDA_LIB_VERSION"))
    cpu_torch = "+cpu" in torch.version
    cuda_wheels = any(name.startswith("nvidia-") for name in lock)
    if cpu_torch and cuda_base:
        return (
            f"uv.lock pins torch {torch.version} (a CPU build) on a CUDA base image: "
            "the run will not use the GPU; lock a CUDA build of torch, or use a CPU base"
        )
    if not cpu_torch and cuda_wheels and not cuda_base:
        return (
            f"uv.lock pins torch {torch.version} with CUDA libraries (nvidia-*), on a base "
            "image without CUDA: set base-image to a CUDA image, or lock the CPU build"
        )
    return None


def dependencies_hash(inputs: ImageInputs) -> str:
    """What decides what uv installs: the root's and every member's dependency sections."""
    sections = {
        "root": dependency_section(inputs.pyproject),
        "members": dict(sorted(inputs.member_sections.items())),
    }
    return sha256(_canonical_json(sections))


def _canonical_json(value: Any) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def runtime_hash(files: Mapping[str, bytes]) -> str:
    h = hashlib.sha256()
    for name in sorted(files):
        h.update(name.encode() + b"\0" + hashlib.sha256(files[name]).digest())
    return "sha256:" + h.hexdigest()


def image_repo(project_name: str) -> str:
    slug = re.sub(r"[^a-z0-9._-]+", "-", project_name.lower()).strip("-._") or "project"
    return f"{keys.IMAGE_REPO_PREFIX}/{slug}"


def final_files(inputs: ImageInputs) -> tuple[dict[str, bytes], dict[str, bytes]]:
    """What the ``reprise`` layer holds, by path in the image: the runtime and the project's
    links (import roots, dist-info) under the runtime folder, and the project's console
    scripts in the venv's bin/."""
    lib = {f"{keys.CONTAINER_RUNTIME_LIB}/{n}": d for n, d in inputs.runtime_files.items()}
    scripts = {}
    for name, data in inputs.links.items():
        if name.startswith("bin/"):
            scripts[f"{keys.CONTAINER_VENV}/{name}"] = data
        elif name.startswith("lib/"):
            lib[f"{keys.CONTAINER_RUNTIME_LIB}/{name[4:]}"] = data
    return dict(sorted(lib.items())), dict(sorted(scripts.items()))


def base_digest_of(base_digest_ref: str) -> str:
    return base_digest_ref.rsplit("@", 1)[1]


def _bare_values_are_one_line(inputs: ImageInputs) -> None:
    """The values that stand unquoted in the Dockerfile (FROM, COPY, RUN, comments) hold no
    line break or control character: a line break would end the instruction and start one."""
    for what, value in (
        ("base-image", inputs.base_ref),
        ("the base image's reference", inputs.base_digest_ref),
        ("the base image's Python", inputs.python.path),
        ("requires-python", inputs.python.request),
        ("wheelhouse", inputs.wheelhouse),
        ("uv's version", inputs.uv_version),
    ):
        if value is not None and _CONTROL.search(value):
            raise ProjectError(
                f"{what} {value!r} holds a line break or control character: reprise writes "
                "no such value into a Dockerfile"
            )


def image_labels(inputs: ImageInputs) -> dict[str, str]:
    """The labels of the final image: reprise's (what defines it) and the OCI ones."""
    labels = {
        keys.LABEL_BASE_DIGEST: base_digest_of(inputs.base_digest_ref),
        keys.LABEL_BASE_IMAGE: inputs.base_ref,
        keys.LABEL_DEPS_HASH: dependencies_hash(inputs),
        keys.LABEL_LOCK_HASH: sha256(inputs.lock),
        keys.LABEL_PROJECT: inputs.project_name,
        keys.LABEL_RUNTIME_HASH: runtime_hash(inputs.runtime_files),
        keys.LABEL_VERSION: __version__,
        "org.opencontainers.image.base.digest": base_digest_of(inputs.base_digest_ref),
        "org.opencontainers.image.base.name": inputs.base_digest_ref.rsplit("@", 1)[0],
        "org.opencontainers.image.title": inputs.project_name,
    }
    return dict(sorted(labels.items()))


def layer_names(inputs: ImageInputs) -> tuple[str, ...]:
    from reprise.core.layers import ENVIRONMENT, PYTHON, REPRISE, heavy_packages

    heavy = [p.layer for p in heavy_packages(inputs.lock)]
    return (*([PYTHON] if inputs.python.managed else []), *heavy, ENVIRONMENT, REPRISE)


def render_dockerfile(inputs: ImageInputs, template: str) -> str:
    from reprise.core.layers import heavy_packages, heavy_requirements, index_args

    _bare_values_are_one_line(inputs)
    heavy = heavy_packages(inputs.lock)
    heavy_files = list(zip(sorted(heavy_requirements(heavy)), index_args(heavy), strict=True))
    return render(
        template,
        {
            "reprise_version": __version__,
            "uv_version": inputs.uv_version,
            "base_ref": inputs.base_ref,
            "base_digest_ref": inputs.base_digest_ref,
            "python": inputs.python,
            "ca_bundle": inputs.ca_bundle,
            "wheelhouse": inputs.wheelhouse,
            "venv": keys.CONTAINER_VENV,
            "runtime_lib": keys.CONTAINER_RUNTIME_LIB,
            "code_dir": keys.CONTAINER_CODE,
            "run_dir": keys.CONTAINER_RUN,
            "uid": keys.CONTAINER_UID,
            "gid": keys.CONTAINER_GID,
            "env": image_env(inputs.python),
            "project": inputs.project_name,
            "heavy_files": heavy_files,
            "heavy_names": [p.name for p in heavy],
            "layers": layer_names(inputs),
            "sync_flags": inputs.sync.flags(),
            "scripts": any(name.startswith("bin/") for name in inputs.links),
            "work_dir": keys.CONTAINER_WORK,
        },
    )


def plan_image(inputs: ImageInputs, template: str) -> ImagePlan:
    """The image's identity and the Dockerfile to build it.

    An extra CA bundle only lets the build stage reach the package index: it changes nothing
    in the image. So the identity (tag, recorded Dockerfile) comes from the rendering without
    it, and ``build_dockerfile`` (what the engine builds) adds it when configured.
    """
    dockerfile = render_dockerfile(dataclasses.replace(inputs, ca_bundle=False), template)
    build_dockerfile = render_dockerfile(inputs, template) if inputs.ca_bundle else dockerfile
    deps = dependencies_hash(inputs)
    lock = sha256(inputs.lock)
    runtime = runtime_hash(inputs.runtime_files)
    dockerfile_hash = sha256(dockerfile.encode())
    from reprise.core.layers import LAYER_FORMAT

    spec = {
        "base": inputs.base_digest_ref,
        "dependencies": deps,
        "dockerfile": dockerfile_hash,
        "lock": lock,
        "runtime": runtime,
        "links": runtime_hash(inputs.links),
        "uv": inputs.uv_version,
        "layers": LAYER_FORMAT,  # how reprise packs them: a new way is a new image
    }
    spec_hash = sha256(_canonical_json(spec))
    from reprise.core.layers import heavy_packages, heavy_requirements

    return ImagePlan(
        dockerfile=dockerfile,
        build_dockerfile=build_dockerfile,
        tag=f"{image_repo(inputs.project_name)}:{spec_hash.split(':')[1][:SPEC_HASH_LENGTH]}",
        spec_hash=spec_hash,
        base_digest=base_digest_of(inputs.base_digest_ref),
        lock_hash=lock,
        deps_hash=deps,
        runtime_hash=runtime,
        dockerfile_hash=dockerfile_hash,
        heavy_requirements=heavy_requirements(heavy_packages(inputs.lock)),
        layers=layer_names(inputs),
    )


# --- build context ------------------------------------------------------------------------
@dataclass(frozen=True)
class ContextFile:
    """One member of the build context: inline bytes or a file on disk."""

    name: str
    data: bytes | None = None
    source: Path | None = None
    mode: int = 0o644


def context_files(
    plan: ImagePlan,
    inputs: ImageInputs,
    *,
    uv_binary: Path,
    ca_bundle: Path | None,
    wheelhouse: Path | None,
) -> list[ContextFile]:
    files = [
        ContextFile("Dockerfile", data=plan.build_dockerfile.encode()),
        ContextFile("project/pyproject.toml", data=inputs.pyproject_bytes),
        ContextFile("project/uv.lock", data=inputs.lock),
        ContextFile("reprise/uv", source=uv_binary, mode=0o755),
    ]
    files += [
        ContextFile(f"project/{rel}/pyproject.toml", data=data)
        for rel, data in sorted(inputs.member_pyprojects.items())
    ]
    files += [
        ContextFile(f"reprise/heavy/{name}", data=text.encode())
        for name, text in sorted(plan.heavy_requirements.items())
    ]
    if plan.heavy_requirements:
        from reprise.core.layers import COMPILE_SCRIPT

        files.append(ContextFile("reprise/compile.py", data=COMPILE_SCRIPT.encode()))
    if ca_bundle is not None:
        files.append(ContextFile("reprise/ca-bundle.pem", source=ca_bundle))
    if wheelhouse is not None:
        for path in wheelhouse_files(wheelhouse):
            rel = path.relative_to(wheelhouse).as_posix()
            files.append(ContextFile(f"reprise/wheelhouse/{rel}", source=path))
    return sorted(files, key=lambda f: f.name)


def wheelhouse_files(wheelhouse: Path) -> list[Path]:
    """The wheelhouse's files, sorted; an empty one is a SettingsError (Docker's own words
    would be a COPY that found nothing)."""
    wheels = sorted(p for p in wheelhouse.rglob("*") if p.is_file())
    if not wheels:
        raise SettingsError(
            f"wheelhouse {wheelhouse} holds no files: uv would find no package there",
            key="wheelhouse",
            value=str(wheelhouse),
            hint="put the project's wheels there (e.g. `uv export --frozen --no-hashes > "
            f"req.txt && pip download -r req.txt -d {wheelhouse}`), or remove the wheelhouse "
            "setting (REPRISE_WHEELHOUSE)",
        )
    return wheels


def write_tar(files: Iterable[ContextFile], out: IO[bytes]) -> None:
    """A deterministic tar: sorted members, mtime 0, owner 0:0, fixed modes."""
    with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for f in sorted(files, key=lambda f: f.name):
            info = tarfile.TarInfo(f.name)
            info.mtime = 0
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            info.mode = f.mode
            if f.data is not None:
                info.size = len(f.data)
                tar.addfile(info, io.BytesIO(f.data))
            else:
                assert f.source is not None
                info.size = f.source.stat().st_size
                with f.source.open("rb") as fh:
                    tar.addfile(info, fh)
