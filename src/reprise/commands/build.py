"""`reprise build`: resolve the base, check the project, render, and build only when needed."""

from __future__ import annotations

import contextlib
import dataclasses
import importlib.util
import json
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from reprise import __version__
from reprise.commands.layercache import heavy_keys, load_layers, save_layers
from reprise.core import keys
from reprise.core.errors import ProjectError, SettingsError
from reprise.core.image import (
    BasePython,
    ImageInputs,
    ImagePlan,
    context_files,
    dependency_section,
    final_files,
    image_env,
    image_labels,
    plan_image,
    runtime_hash,
    sha256,
    torch_base_mismatch,
    wheelhouse_files,
    write_tar,
)
from reprise.core.layers import HEAVY_BYTES, HEAVY_NAMES, LAYER_FORMAT
from reprise.core.names import parse_image_ref
from reprise.core.progress import Say
from reprise.core.settings import Settings
from reprise.core.templating import template_text
from reprise.core.workspace import Member, link_files, linked, parse_lock
from reprise.edges.docker import Engine
from reprise.edges.project import Project, cache_dir, read_lock, uv_binary, uv_version
from reprise.edges.runstore import atomic_write, file_lock

_PROBE = (
    "import json, sys; print(json.dumps({'path': sys.executable, "
    "'version': '.'.join(map(str, sys.version_info[:3]))}))"
)


@dataclass(frozen=True)
class BuildResult:
    plan: ImagePlan
    inputs: ImageInputs
    image_id: str
    built: bool
    base_ref: str
    base_digest_ref: str


def runtime_files() -> dict[str, bytes]:
    """reprise_runtime's sources and the sitecustomize that loads it, as they go into images
    (found, not imported: importing it would cost every command 20 ms)."""
    spec = importlib.util.find_spec("reprise_runtime")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("reprise_runtime is not installed beside reprise")
    package = Path(next(iter(spec.submodule_search_locations)))
    files = {
        f"reprise_runtime/{entry.name}": entry.read_bytes()
        for entry in sorted(package.iterdir(), key=lambda e: e.name)
        if entry.name.endswith(".py")
    }
    files["sitecustomize.py"] = (
        b"# Loaded at every Python start in a reprise image: seeds before user code runs.\n"
        b"import reprise_runtime.boot  # noqa: F401\n"
    )
    return files


def resolve_base(engine: Engine, ref: str, say: Say) -> str:
    """``repo@sha256:...`` for ``ref``; a tag is resolved through the registry, with a warning."""
    repo, _, digest = parse_image_ref(ref)
    if digest:
        return f"{repo}@{digest}"
    say(f"warning: base image {ref} is a tag, and tags move; resolving it to a digest")
    try:
        digest = engine.registry_digest(ref)
    except Exception:
        attrs = engine.image_attrs(ref)
        repo_digests = [d for d in (attrs or {}).get("RepoDigests", []) if d.startswith(repo + "@")]
        if not repo_digests:
            raise
        say(f"warning: registry unreachable; using the local image's digest for {ref}")
        return str(repo_digests[0])
    say(f'base image {ref} -> {repo}@{digest}; pin it as base-image = "{repo}@{digest}"')
    return f"{repo}@{digest}"


def base_env(engine: Engine, base_digest_ref: str) -> dict[str, str]:
    """The base image's environment (when the engine has it; empty otherwise)."""
    attrs = engine.image_attrs(base_digest_ref) or {}
    items = (attrs.get("Config") or {}).get("Env") or []
    return dict(str(item).partition("=")[::2] for item in items)


def ensure_local(engine: Engine, ref: str, say: Say) -> None:
    if engine.image_attrs(ref) is None:
        say(f"pulling {ref}")
        engine.pull(ref, progress=say)


def _probe_cache(base_digest_ref: str) -> Path:
    digest = base_digest_ref.rsplit("@", 1)[1].replace(":", "-")
    return cache_dir() / "base-python" / f"{digest}.json"


def probe_python(
    engine: Engine, base_digest_ref: str, requires_python: str | None, say: Say
) -> BasePython:
    """The base image's Python (cached per base digest), or a uv-managed one when it has none."""
    cache = _probe_cache(base_digest_ref)
    try:
        found = json.loads(cache.read_text())
    except (OSError, ValueError):
        ensure_local(engine, base_digest_ref, say)
        out = engine.run_capture(
            base_digest_ref,
            [
                "sh",
                "-c",
                f'for p in python3 python; do command -v $p >/dev/null && exec $p -c "{_PROBE}"; done; echo null',
            ],
        )
        found = json.loads(out.strip().splitlines()[-1])
        atomic_write(cache, json.dumps(found), durable=False)
    if not found:
        return BasePython(managed=True, request=requires_python or "3.11")
    return BasePython(managed=False, path=found["path"], version=found["version"])


def check_requires_python(requires: str | None, python: BasePython, base: str) -> None:
    if python.managed or not requires or python.version is None:
        return
    from packaging.specifiers import InvalidSpecifier, SpecifierSet

    try:
        spec = SpecifierSet(requires)
    except InvalidSpecifier as exc:
        raise ProjectError(f"requires-python {requires!r} is not a valid specifier: {exc}") from exc
    if python.version not in spec:
        raise ProjectError(
            f"the base image's Python {python.version} does not satisfy requires-python {requires!r}",
            hint=f"use a base image with a matching Python (base: {base}), or widen requires-python",
        )


def check_build_settings(settings: Settings) -> None:
    """The CA bundle and the wheelhouse the build would copy in: checked before the engine is
    asked anything (an empty wheelhouse would otherwise be Docker's COPY error)."""
    if settings.ca_bundle is not None and not settings.ca_bundle.is_file():
        raise SettingsError(
            f"ca-bundle {settings.ca_bundle} is not a file",
            key="ca-bundle",
            value=str(settings.ca_bundle),
        )
    if settings.wheelhouse is not None and not settings.wheelhouse.is_dir():
        raise SettingsError(
            f"wheelhouse {settings.wheelhouse} is not a directory",
            key="wheelhouse",
            value=str(settings.wheelhouse),
        )
    if settings.wheelhouse is not None:
        wheelhouse_files(settings.wheelhouse)


def prepare(
    project: Project, engine: Engine, say: Say, *, lock: bytes | None = None
) -> tuple[ImageInputs, ImagePlan, str]:
    settings = project.settings
    lock = read_lock(project) if lock is None else lock
    check_build_settings(settings)
    if project.ignored_lock is not None:
        say(
            f"warning: {project.ignored_lock} is ignored: uv uses the workspace's lock, "
            f"{project.lock_path} (delete the member's own uv.lock)"
        )
    base_digest_ref = resolve_base(engine, settings.base_image, say)
    python = probe_python(engine, base_digest_ref, project.requires_python, say)
    locked = parse_lock(lock)
    mismatch = torch_base_mismatch(locked, base_env(engine, base_digest_ref))
    if mismatch:
        say(f"warning: {mismatch}")
    members = project.members or (Member(settings.project_name, "", project.code_pyproject),)
    inputs = ImageInputs(
        project_name=settings.project_name,
        base_ref=settings.base_image,
        base_digest_ref=base_digest_ref,
        python=python,
        pyproject=project.code_pyproject,
        pyproject_bytes=project.code_pyproject_bytes,
        lock=lock,
        runtime_files=runtime_files(),
        uv_version=uv_version(),
        ca_bundle=settings.ca_bundle is not None,
        wheelhouse=str(settings.wheelhouse) if settings.wheelhouse else None,
        member_pyprojects={
            m.rel: (project.code_root / m.rel / "pyproject.toml").read_bytes()
            for m in project.members
            if m.rel
        },
        member_sections={m.rel: dependency_section(m.pyproject) for m in project.members if m.rel},
        sync=project.sync,
        links=link_files(
            members,
            linked(
                locked, project.package or (None if project.workspace else settings.project_name)
            ),
            python=f"{keys.CONTAINER_VENV}/bin/python",
            code_dir=keys.CONTAINER_CODE,
        ),
    )
    template = template_text("Dockerfile.j2")
    cache = cache_dir() / "plans" / f"{plan_key(inputs, template)}.json"
    try:
        return inputs, ImagePlan(**json.loads(cache.read_text())), base_digest_ref
    except (OSError, ValueError, TypeError):
        pass
    check_requires_python(project.requires_python, python, settings.base_image)
    plan = plan_image(inputs, template)
    with contextlib.suppress(OSError):
        atomic_write(cache, json.dumps(dataclasses.asdict(plan), sort_keys=True), durable=False)
    return inputs, plan, base_digest_ref


def plan_key(inputs: ImageInputs, template: str) -> str:
    """Everything plan_image reads (and the requires-python check): same key, same plan."""
    parts = {
        "reprise": __version__,
        "template": sha256(template.encode()),
        "base_ref": inputs.base_ref,
        "base_digest_ref": inputs.base_digest_ref,
        "python": dataclasses.asdict(inputs.python),
        "pyproject": sha256(inputs.pyproject_bytes),
        "lock": sha256(inputs.lock),
        "runtime": runtime_hash(inputs.runtime_files),
        "uv": inputs.uv_version,
        "ca_bundle": inputs.ca_bundle,
        "wheelhouse": inputs.wheelhouse,
        "project": inputs.project_name,
        "members": {rel: sha256(data) for rel, data in sorted(inputs.member_pyprojects.items())},
        "sync": inputs.sync.flags(),
        "links": runtime_hash(inputs.links),
        "layering": f"{HEAVY_BYTES}:{HEAVY_NAMES.pattern}:{LAYER_FORMAT}",
    }
    return sha256(json.dumps(parts, sort_keys=True).encode()).split(":")[1]


def build(
    project: Project,
    engine: Engine,
    say: Say,
    *,
    force: bool = False,
    lock: bytes | None = None,
    no_cache: bool = False,
) -> BuildResult:
    """Build the project's image, or reuse it when nothing that defines it changed.
    ``force`` builds again (packing every layer anew); ``no_cache`` also builds every step
    of the build stage anew, the engine's cache unused."""
    force = force or no_cache
    inputs, plan, base_digest_ref = prepare(project, engine, say, lock=lock)
    existing = engine.image_attrs(plan.tag)
    if existing is not None and not force:
        say(f"image {plan.tag} is up to date (nothing that defines it changed)")
        return BuildResult(
            plan, inputs, str(existing["Id"]), False, inputs.base_ref, base_digest_ref
        )
    with _build_lock(plan.tag):
        existing = engine.image_attrs(plan.tag)
        if existing is not None and not force:  # built meanwhile by a concurrent reprise
            return BuildResult(
                plan, inputs, str(existing["Id"]), False, inputs.base_ref, base_digest_ref
            )
        ensure_local(engine, base_digest_ref, say)
        return _build(
            project, engine, inputs, plan, base_digest_ref, say, reuse=not force, no_cache=no_cache
        )


def _build_lock(tag: str) -> contextlib.AbstractContextManager[None]:
    """One build of a tag at a time on this machine: concurrent runs wait, then reuse it."""
    return file_lock(cache_dir() / "locks" / (tag.replace("/", "_").replace(":", "_") + ".lock"))


def _build(
    project: Project,
    engine: Engine,
    inputs: ImageInputs,
    plan: ImagePlan,
    base_digest_ref: str,
    say: Say,
    *,
    reuse: bool = True,
    no_cache: bool = False,
) -> BuildResult:
    """Build the build stage, then assemble the image; with ``reuse``, a heavy package's
    layer packed before under the same key is taken from the engine (``--force`` and
    ``--verify`` pack everything again, so that what they prove is proven)."""
    from reprise.edges.assembly import Assembly, assemble  # only a build packs layers

    say(f"building {plan.tag}")
    settings = project.settings
    files = context_files(
        plan,
        inputs,
        uv_binary=uv_binary(),
        ca_bundle=settings.ca_bundle,
        wheelhouse=settings.wheelhouse,
    )
    log_path = cache_dir() / "builds" / f"{plan.tag.rsplit(':', 1)[1]}.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    say(f"the whole build log: {log_path}")
    with tempfile.TemporaryFile() as context, log_path.open("w", encoding="utf-8") as log:
        write_tar(files, context)
        context.seek(0)
        stage = engine.build(context, f"{plan.tag}-build", progress=say, log=log, no_cache=no_cache)
    lib, scripts = final_files(inputs)
    heavy = [name.removeprefix("package ") for name in plan.layers if name.startswith("package ")]
    image_id, layers = assemble(
        engine,
        stage,
        base_digest_ref,
        Assembly(
            tag=plan.tag,
            env=image_env(inputs.python),
            labels={**image_labels(inputs), **plan.build_labels},
            heavy=set(heavy),
            heavy_order=[f"package {name}" for name in heavy],
            runtime=lib,
            scripts=scripts,
            managed_python=inputs.python.managed,
            heavy_keys=heavy_keys(inputs, plan, base_digest_ref) if reuse else {},
            cache=cache_dir() / "layers" if reuse else None,
        ),
        say,
    )
    save_layers(image_id, [layer.to_record() for layer in layers])
    say(f"built {plan.tag} ({image_id[:19]})")
    return BuildResult(plan, inputs, image_id, True, inputs.base_ref, base_digest_ref)


@dataclass(frozen=True)
class RunImage:
    """The image a run uses, as the run records it; from a build or from a past record."""

    id: str
    record: dict[str, Any]
    dockerfile: bytes
    lock: bytes
    env: dict[str, str]


def run_image(result: BuildResult) -> RunImage:
    return RunImage(
        id=result.image_id,
        record=image_record(result),
        dockerfile=result.plan.dockerfile.encode(),
        lock=result.inputs.lock,
        env=image_env(result.inputs.python),
    )


def image_record(result: BuildResult) -> dict[str, Any]:
    plan = result.plan
    return {
        "tag": plan.tag,
        "id": result.image_id,
        "spec_hash": plan.spec_hash,
        "base_image": result.base_ref,
        "base_digest": plan.base_digest,
        "base_ref": result.base_digest_ref,
        "lock_hash": plan.lock_hash,
        "dependencies_hash": plan.deps_hash,
        "dockerfile_hash": plan.dockerfile_hash,
        "runtime_hash": plan.runtime_hash,
        "python": result.inputs.python.version,
        "repo_digest": None,
        "source": "built" if result.built else "local",
        "sync": result.inputs.sync.to_record(),
        "layers": load_layers(result.image_id),
    }


def plan_project(project: Project, say: Say) -> ImagePlan:
    """`reprise build --dry-run`: the plan (Dockerfile and tag), building nothing."""
    _, plan, _ = prepare(project, Engine.from_env(), say, lock=read_lock(project))
    return plan


def build_project(
    project: Project,
    say: Say,
    *,
    force: bool,
    push: bool,
    push_to: str | None,
    no_cache: bool = False,
) -> dict[str, Any]:
    """`reprise build`: build or reuse the image, and push it when asked."""
    check_build_settings(project.settings)
    engine = Engine.from_env()
    result = build(project, engine, say, force=force, lock=read_lock(project), no_cache=no_cache)
    out: dict[str, Any] = {"tag": result.plan.tag, "id": result.image_id, "built": result.built}
    if push:
        from reprise.commands.push import push_image, registry_for

        registry = registry_for(project.settings, push_to)
        out["pushed"] = push_image(engine, result.plan.tag, result.plan.tag, registry, say)
    return out
