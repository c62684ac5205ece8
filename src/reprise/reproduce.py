"""`reprise reproduce`: rerun a past run from its record and prove the outputs identical,
or say exactly where they diverged."""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from reprise import keys
from reprise.builder import RunImage, build, run_image
from reprise.datasets import Dataset, hash_datasets
from reprise.divergence import (
    JSONL_SUFFIXES,
    TENSOR_SUFFIXES,
    TargetDifference,
    describe_jsonl,
    describe_tensors,
    diff_jsonl,
    target_differences,
)
from reprise.engine import Engine, Mount, parse_image_ref
from reprise.envvars import RunEnv
from reprise.errors import (
    EXIT_BAD_INPUT,
    EXIT_JOB_FAILED,
    EXIT_UNAVAILABLE,
    ImageUnavailableError,
    ProjectError,
    RepriseError,
    UsageError,
)
from reprise.gitrepo import CodeState, export_code
from reprise.hostinfo import describe_host
from reprise.image import sha256
from reprise.lifecycle import render_card_safely
from reprise.manifest import Manifest, ManifestDiff, compare_manifests
from reprise.project import load_project
from reprise.runner import Resources, RunInputs, code_dir, execute
from reprise.runstore import read_record, utc_now, write_record

Say = Callable[[str], None]


class DataChangedError(RepriseError):
    """A dataset's content differs from the one the run was made with."""

    exit_code = EXIT_UNAVAILABLE

    def __init__(self, changes: list[str]) -> None:
        super().__init__(
            "the data differs from the run's: " + "; ".join(changes),
            hint="restore the recorded data, or pass --allow-data-change to run anyway (the verdict says so)",
        )
        self.changes = changes


class TargetMismatchError(RepriseError):
    """--strict and the target differs in a way that voids the bitwise guarantee."""

    exit_code = EXIT_UNAVAILABLE

    def __init__(self, differences: list[TargetDifference]) -> None:
        lines = "; ".join(d.describe() for d in differences if d.voids)
        super().__init__(
            f"this machine differs from the original in ways that void bit-for-bit results: {lines}",
            hint="reproduce on a matching machine, or drop --strict to run and compare anyway",
        )
        self.differences = differences


@dataclass
class Verdict:
    run_id: str
    run_dir: str
    verdict: str  # identical | diverged | error
    exit_code: int
    rerun_id: str | None = None
    rerun_dir: str | None = None
    rerun_status: str | None = None
    image: dict[str, Any] = field(default_factory=dict)
    target: list[TargetDifference] = field(default_factory=list)
    files: ManifestDiff | None = None
    reports: dict[str, Any] = field(default_factory=dict)
    details: list[str] = field(default_factory=list)
    error: str | None = None
    hint: str | None = None
    duration_s: float | None = None
    data_changed: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "run_dir": self.run_dir,
            "verdict": self.verdict,
            "exit_code": self.exit_code,
            "rerun_id": self.rerun_id,
            "rerun_dir": self.rerun_dir,
            "rerun_status": self.rerun_status,
            "image": self.image,
            "target": {
                "differences": [d.to_dict() for d in self.target],
                "guaranteed": not any(d.voids for d in self.target),
            },
            "files": self.files.to_dict() if self.files else None,
            "reports": self.reports,
            "details": self.details,
            "data_changed": self.data_changed,
            "error": self.error,
            "hint": self.hint,
            "duration_s": self.duration_s,
        }


# --- the image -----------------------------------------------------------------------------
def candidate_refs(image: dict[str, Any], registry: str | None) -> list[str]:
    """Where the recorded image may be pulled from, by digest where a digest is known."""
    refs: list[str] = []
    if image.get("repo_digest"):
        refs.append(str(image["repo_digest"]))
    if registry:
        registry = registry.rstrip("/")
        repo, tag, _ = parse_image_ref(str(image["tag"]))
        digest = str(image["repo_digest"]).rsplit("@", 1)[1] if image.get("repo_digest") else None
        refs.append(f"{registry}/{repo}@{digest}" if digest else f"{registry}/{repo}:{tag}")
    return list(dict.fromkeys(refs))


def locate_image(
    engine: Engine, record: dict[str, Any], registry: str | None, say: Say
) -> tuple[str, str]:
    """(image id, how it was had): the local image with the recorded id, else a pull."""
    image = record["image"]
    wanted = str(image["id"])
    if engine.image_attrs(wanted) is not None:
        return wanted, "local"
    tried: list[str] = []
    for ref in candidate_refs(image, registry):
        say(f"pulling {ref}")
        try:
            attrs = engine.pull(ref, progress=say)
        except ImageUnavailableError as exc:
            tried.append(f"{ref} ({exc.message})")
            continue
        if attrs["Id"] != wanted:
            raise ImageUnavailableError(
                f"{ref} is image {attrs['Id']}, not the recorded {wanted}",
                hint="the registry holds a different image under that name; pull by digest or use a bundle",
            )
        return wanted, f"pulled {ref}"
    where = "; tried " + ", ".join(tried) if tried else ""
    raise ImageUnavailableError(
        f"the run's image {wanted} is not in this engine and could not be pulled{where}",
        hint=(
            "pass --registry HOST[/NAMESPACE] where it was pushed (reprise push), import the run's "
            "bundle (reprise bundle import), or --rebuild to build it anew from the recorded "
            "Dockerfile and uv.lock (a new artifact: not the original environment)"
        ),
    )


def rebuild_image(
    engine: Engine, record: dict[str, Any], run_dir: Path, code_path: Path, say: Say
) -> RunImage:
    say("--rebuild: building the environment anew from the recorded uv.lock and Dockerfile inputs;")
    say(
        "the result is a new artifact, not the original image: the verdict tests code, config and seed"
    )
    project = load_project(code_path)
    settings = dataclasses.replace(project.settings, base_image=record["image"]["base_ref"])
    project = dataclasses.replace(project, settings=settings)
    lock = (run_dir / keys.RUN_LOCK).read_bytes()
    result = build(project, engine, say, lock=lock)
    image = run_image(result)
    image.record["source"] = "rebuilt"
    image.record["rebuilt_from"] = record["image"]["id"]
    return image


def recorded_image(record: dict[str, Any], run_dir: Path, image_id: str, source: str) -> RunImage:
    image_record = dict(record["image"])
    image_record["source"] = source
    return RunImage(
        id=image_id,
        record=image_record,
        dockerfile=(run_dir / keys.RUN_DOCKERFILE).read_bytes(),
        lock=(run_dir / keys.RUN_LOCK).read_bytes(),
        env=dict(record["environment"]["image"]),
    )


# --- the rerun -----------------------------------------------------------------------------
def recorded_code(record: dict[str, Any], run_dir: Path, repo: Path | None) -> CodeState:
    code = record["code"]
    patch = b""
    if code.get("dirty"):
        patch_path = run_dir / keys.RUN_PATCH
        if not patch_path.is_file():
            raise ProjectError(
                f"the run was dirty but {patch_path} is missing", path=str(patch_path)
            )
        patch = patch_path.read_bytes()
        if sha256(patch) != code.get("patch_hash"):
            raise ProjectError(f"{patch_path} does not match the hash recorded in run.json")
    return CodeState(
        root=repo or run_dir,
        commit=code["commit"],
        branch=code.get("branch"),
        remote=code.get("remote"),
        dirty=bool(code.get("dirty")),
        patch=patch,
        subdir=code.get("subdir") or "",
    )


def ensure_code(code: CodeState, runs_dir: Path, repo: Path | None) -> Path:
    path = code_dir(runs_dir, code)
    if path.is_dir():
        return path
    if repo is None:
        raise ProjectError(
            f"the code of commit {code.commit[:12]} is not cached and no git repository was given",
            hint="run reproduce inside the project's repository (or pass --project), or use a bundle",
        )
    export_code(repo, code.commit, code.patch, path, subdir=code.subdir)
    return path


def rerun_inputs(record: dict[str, Any], run_dir: Path, code: CodeState) -> RunInputs:
    config_text = (run_dir / keys.RUN_CONFIG).read_text(encoding="utf-8")
    if sha256(config_text.encode()) != record["config"]["hash"]:
        raise ProjectError(
            f"{run_dir / keys.RUN_CONFIG} was changed after the run (its hash differs from run.json)",
            hint="restore the frozen config; reprise will not rerun with a different one",
        )
    return RunInputs(
        runs_dir=run_dir.parent.parent,
        project_name=record["project"],
        experiment=record["experiment"],
        command=tuple(record["command"]),
        config_text=config_text,
        config_source=record["config"].get("source"),
        overrides=tuple(record["config"].get("overrides") or ()),
        seed=int(record["seed"]),
        seed_source="reproduce",
        threads=int(record["threads"]),
        code=code,
        gpus=record.get("gpus"),
        reproduces=record["run_id"],
        env=recorded_env(record, os.environ),
        resources=Resources(**(record.get("resources") or {})),
    )


def recorded_env(record: dict[str, Any], host: Mapping[str, str]) -> RunEnv:
    """The run's own variables again; secret ones (never recorded) from this environment."""
    environment = record.get("environment") or {}
    values = dict(environment.get("user") or {})
    names = list(environment.get("secrets") or [])
    missing = [n for n in names if n not in host]
    if missing:
        raise UsageError(
            f"the run was given secret {', '.join(missing)}, whose value is never recorded",
            hint="set it in this environment to reproduce the run",
        )
    values.update({n: host[n] for n in names})
    return RunEnv(values=values, secret_names=frozenset(names))


# --- comparison ----------------------------------------------------------------------------
def load_manifest(run_dir: Path) -> Manifest:
    path = run_dir / keys.RUN_MANIFEST
    try:
        return Manifest.from_json(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ProjectError(f"{path} is missing: the run never finished", path=str(path)) from None
    except ValueError as exc:
        raise ProjectError(f"{path} is not a valid manifest: {exc}", path=str(path)) from exc


def explain(
    engine: Engine | None, image_id: str | None, a_dir: Path, b_dir: Path, diff: ManifestDiff
) -> tuple[dict[str, Any], list[str]]:
    """Reports on each changed file: metrics lines, tensors; plus missing and extra files."""
    reports: dict[str, Any] = {}
    lines: list[str] = []
    for path in diff.changed:
        a, b = a_dir / path, b_dir / path
        if not (a.is_file() and b.is_file()):
            lines.append(f"{path}: content differs (the original file is not here to compare)")
            continue
        if path.endswith(JSONL_SUFFIXES):
            report = diff_jsonl(a.read_text(errors="replace"), b.read_text(errors="replace"))
            if report is not None:
                reports[path] = {"kind": "jsonl", **report}
                lines.append(describe_jsonl(path, report))
                continue
        if path.endswith(TENSOR_SUFFIXES) and engine is not None and image_id is not None:
            report = compare_tensors(engine, image_id, a, b)
            reports[path] = {"kind": "tensors", **report}
            lines.extend(describe_tensors(path, report))
            continue
        lines.append(f"{path}: content differs ({a.stat().st_size} -> {b.stat().st_size} bytes)")
    lines += [f"{p}: missing from the rerun" for p in diff.missing]
    lines += [f"{p}: only in the rerun" for p in diff.extra]
    return reports, lines


def compare_tensors(engine: Engine, image_id: str, a: Path, b: Path) -> dict[str, Any]:
    """Load both files with the image's own torch/NumPy and compare tensor by tensor."""
    out = engine.run_capture(
        image_id,
        ["python", "-m", "reprise_runtime.compare", f"/a/{a.name}", f"/b/{b.name}"],
        mounts=[
            Mount(str(a.resolve()), f"/a/{a.name}", read_only=True),
            Mount(str(b.resolve()), f"/b/{b.name}", read_only=True),
        ],
    )
    try:
        result: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
    except (ValueError, IndexError):
        return {"loadable": False, "error": f"no report from the comparison: {out[-200:]!r}"}
    return result


# --- the whole thing -----------------------------------------------------------------------
def reproduce(
    engine: Engine,
    run_dir: Path,
    *,
    repo: Path | None,
    registry: str | None,
    rebuild: bool,
    strict: bool,
    say: Say,
    console: IO[bytes] | None = None,
    data_paths: Mapping[str, Path] | None = None,
    allow_data_change: bool = False,
    card_template: Path | None = None,
) -> Verdict:
    record = read_record(run_dir)
    original = load_manifest(run_dir)
    runs_dir = run_dir.parent.parent
    code = recorded_code(record, run_dir, repo)
    verdict = Verdict(
        run_id=record["run_id"], run_dir=str(run_dir), verdict="error", exit_code=EXIT_BAD_INPUT
    )

    current_host = describe_host(engine.version())
    verdict.target = target_differences(
        record.get("host") or {},
        record.get("runtime"),
        current_host,
        uses_gpu=bool(record.get("gpus")),
    )
    for d in verdict.target:
        say(f"target: {d.describe()}")
    if strict and any(d.voids for d in verdict.target):
        raise TargetMismatchError(verdict.target)

    data, verdict.data_changed = check_data(record, data_paths or {}, allow_data_change, say)
    code_path = ensure_code(code, runs_dir, repo)
    inputs = dataclasses.replace(
        rerun_inputs(record, run_dir, code), data=data, card_template=card_template
    )
    if rebuild and engine.image_attrs(record["image"]["id"]) is None:
        image = rebuild_image(engine, record, run_dir, code_path, say)
    else:
        image_id, source = locate_image(engine, record, registry, say)
        image = recorded_image(record, run_dir, image_id, source)
    verdict.image = {
        "id": image.id,
        "source": image.record["source"],
        "recorded_id": record["image"]["id"],
    }
    say(f"image {image.id[:19]} ({image.record['source']})")

    rerun_dir = execute(engine, inputs, image, say=say, console=console)
    rerun = read_record(rerun_dir)
    verdict.rerun_id, verdict.rerun_dir = rerun["run_id"], str(rerun_dir)
    verdict.rerun_status, verdict.duration_s = rerun["status"], rerun.get("duration_s")
    diff = compare_manifests(original, load_manifest(rerun_dir))
    verdict.files = diff
    if diff.identical and rerun["status"] == record["status"]:
        verdict.verdict, verdict.exit_code = "identical", 0
    else:
        verdict.verdict, verdict.exit_code = "diverged", EXIT_JOB_FAILED
        verdict.reports, verdict.details = explain(engine, image.id, run_dir, rerun_dir, diff)
        if rerun["status"] != record["status"]:
            verdict.details.insert(
                0, f"status: {record['status']} originally, {rerun['status']} in the rerun"
            )
    if verdict.data_changed:
        verdict.details.insert(
            0, "data changed (--allow-data-change): " + ", ".join(verdict.data_changed)
        )
    _record_verdict(run_dir, rerun_dir, verdict, current_host)
    for path in (run_dir, rerun_dir):
        render_card_safely(path, card_template, say)
    return verdict


def check_data(
    record: dict[str, Any], paths: Mapping[str, Path], allow_change: bool, say: Say
) -> tuple[dict[str, Dataset], list[str]]:
    """Hash the datasets the run used (at the project's paths, else the recorded ones)."""
    recorded: dict[str, Any] = record.get("data") or {}
    current = hash_datasets(
        {name: paths.get(name, Path(info["path"])) for name, info in recorded.items()}
    )
    changes = [
        f"{name}: {recorded[name]['hash']} -> {current[name].hash}"
        for name in sorted(recorded)
        if current[name].hash != recorded[name]["hash"]
    ]
    if changes and not allow_change:
        raise DataChangedError(changes)
    for change in changes:
        say(f"warning: data changed, running anyway: {change}")
    return current, [c.split(":", 1)[0] for c in changes]


def _record_verdict(run_dir: Path, rerun_dir: Path, verdict: Verdict, host: dict[str, Any]) -> None:
    gpus = (host.get("gpu") or {}).get("gpus") or []
    entry = {
        "run_id": verdict.rerun_id,
        "verdict": verdict.verdict,
        "data_changed": verdict.data_changed,
        "at": utc_now(),
        "hostname": host.get("hostname"),
        "gpu": gpus[0]["name"] if gpus else None,
        "driver": gpus[0]["driver"] if gpus else None,
        "cpu": host.get("cpu"),
        "image_source": verdict.image.get("source"),
    }
    rerun = read_record(rerun_dir)
    rerun["reproduction"] = verdict.to_dict()
    write_record(rerun_dir, rerun)
    original = read_record(run_dir)
    original.setdefault("reproductions", []).append(entry)
    write_record(run_dir, original)


def error_verdict(run_ref: str, run_dir: Path | None, exc: RepriseError) -> Verdict:
    return Verdict(
        run_id=run_dir.name if run_dir else run_ref,
        run_dir=str(run_dir) if run_dir else "",
        verdict="error",
        exit_code=exc.exit_code,
        error=exc.message,
        hint=exc.hint,
    )
