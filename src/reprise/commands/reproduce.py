"""`reprise reproduce`: rerun a past run from its record and prove the outputs identical,
or say exactly where they diverged.

The record may come from a bundle: every value in it was validated when it was read, nothing
in it becomes a host path unless the user names it (datasets), and the rerun goes through the
execution seam like any run.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from reprise.commands.build import RunImage
from reprise.commands.finish import render_card_safely
from reprise.commands.inputs import RunInputs, code_dir, recorded_env
from reprise.commands.nodecheck import after_rerun, before_rerun
from reprise.commands.rerun_image import locate_image, rebuild_image, record_file, recorded_image
from reprise.commands.run import execute
from reprise.commands.verdict import (
    Verdict,
    error_verdict,
    explain,
    load_manifest,
    nondeterministic_note,
)
from reprise.core import keys
from reprise.core.cardsettings import CardSettings
from reprise.core.divergence import TargetDifference, target_differences
from reprise.core.errors import (
    EXIT_BAD_INPUT,
    VERDICT_EXIT,
    DataChangedError,
    RecordError,
    RepriseError,
    TargetMismatchError,
    UsageError,
)
from reprise.core.image import sha256
from reprise.core.layers import environment_verdict
from reprise.core.manifest import compare_manifests
from reprise.core.progress import Say
from reprise.core.resources import Resources
from reprise.core.settings import Prepare, Settings
from reprise.edges.datasets import Dataset, hash_datasets
from reprise.edges.git import CodeState, export_code, made_here
from reprise.edges.runstore import read_record, utc_now, write_record
from reprise.execution.backend import Backend


@dataclass(frozen=True)
class ReproduceOptions:
    """How to reproduce: where the code and the image may come from, what to accept."""

    repo: Path | None = None
    registry: str | None = None
    rebuild: bool = False
    strict: bool = False
    data_paths: Mapping[str, Path] = field(default_factory=dict)
    allow_data_change: bool = False
    allow_prepare: bool = False  # run a prepare step (network, the record's code and image)
    card: CardSettings | None = None
    bisect: bool = False  # narrow a fingerprinted divergence with partial reruns
    # The user's own project settings: --rebuild takes its wheelhouse and CA bundle from
    # here, never from the recorded project (whose paths would be host paths).
    settings: Settings | None = None


# --- the rerun -----------------------------------------------------------------------------
def recorded_code(record: dict[str, Any], run_dir: Path, repo: Path | None) -> CodeState:
    code = record["code"]
    patch = b""
    if code.get("dirty"):
        patch_path = run_dir / keys.RUN_PATCH
        patch = record_file(run_dir, keys.RUN_PATCH)
        if sha256(patch) != code.get("patch_hash"):
            raise RecordError(
                f"{patch_path} does not match the hash recorded in run.json", path=str(patch_path)
            )
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
    """The run's code: from the repository when it has the commit, else a bundle's."""
    path = code_dir(runs_dir, code)
    if path.is_dir() and (repo is None or made_here(path)):
        return path
    if repo is None:
        raise UsageError(
            f"the code of commit {code.commit[:12]} is not cached and no git repository was given",
            hint="run reproduce inside the project's repository (or pass --project), or use a bundle",
        )
    export_code(repo, code.commit, code.patch, path, subdir=code.subdir)  # or the bundle's
    return path


def rerun_inputs(record: dict[str, Any], run_dir: Path, code: CodeState) -> RunInputs:
    config_raw = record_file(run_dir, keys.RUN_CONFIG)
    config_text = config_raw.decode("utf-8", "replace")
    if sha256(config_raw) != record["config"]["hash"]:
        raise RecordError(
            f"{run_dir / keys.RUN_CONFIG} was changed after the run (its hash differs from run.json)",
            hint="restore the frozen config; reprise will not rerun with a different one",
        )
    return RunInputs(
        runs_dir=run_dir.parent.parent,
        project_name=str(record.get("project") or record["experiment"]),
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
        resources=Resources.from_record(record.get("resources")),
        workdir=record["code"].get("workdir") or "",
        delivery=record["config"].get("delivery") or "file",
        volatile=tuple(record.get("volatile") or ()),
        # Runs recorded before these existed had strict mode and no fingerprints.
        determinism=str(record.get("determinism") or "strict"),
        fingerprint_every=record.get("fingerprint_every"),
    )


# --- the whole thing -----------------------------------------------------------------------
def _target(
    backend: Backend, record: dict[str, Any], image_id: str, strict: bool, say: Say
) -> tuple[dict[str, Any], list[TargetDifference]]:
    """The machine the rerun executes on and how it differs from the original's."""
    host = backend.describe_host(image_id)
    target = target_differences(
        record.get("host") or {}, record.get("runtime"), host, uses_gpu=bool(record.get("gpus"))
    )
    for d in target:
        say(f"target: {d.describe()}")
    if strict and any(d.voids for d in target):
        raise TargetMismatchError([d.describe() for d in target if d.voids])
    return host, target


def _image(
    backend: Backend,
    record: dict[str, Any],
    run_dir: Path,
    code_path: Path,
    options: ReproduceOptions,
    say: Say,
) -> RunImage:
    if options.rebuild and not backend.has_image(record["image"]["id"]):
        image = rebuild_image(record, run_dir, code_path, options.settings, say)
        found = environment_verdict(record["image"], image.record)
        say(f"environment {found['verdict']}: proven {found['proven']}")
        image.record["verified"] = found
        return image
    image_id, source = locate_image(backend, record, options.registry, say, root=options.repo)
    return recorded_image(record, run_dir, image_id, source)


def _judge(
    backend: Backend,
    verdict: Verdict,
    record: dict[str, Any],
    run_dir: Path,
    rerun_dir: Path,
    image_id: str,
) -> None:
    """Compare the rerun with the original and fill in the verdict."""
    rerun = read_record(rerun_dir)
    verdict.rerun_id, verdict.rerun_dir = rerun["run_id"], str(rerun_dir)
    verdict.rerun_status, verdict.duration_s = rerun["status"], rerun.get("duration_s")
    original, again = load_manifest(run_dir), load_manifest(rerun_dir)
    diff = compare_manifests(original, again, record.get("volatile") or ())
    verdict.files = diff
    same_status = rerun["status"] == record["status"]
    verdict.verdict = diff.outcome(same_status)
    verdict.exit_code = VERDICT_EXIT[verdict.verdict]
    if verdict.verdict == "nothing-compared":
        verdict.details.append(
            "the run produced no output to compare: nothing was proven identical"
            + (
                f" ({len(diff.volatile)} volatile files recorded, not compared)"
                if diff.volatile
                else ""
            )
        )
    elif verdict.verdict != "identical":
        kinds = ({e.path: e.kind for e in original.files}, {e.path: e.kind for e in again.files})
        verdict.reports, verdict.details = explain(
            backend, image_id, run_dir, rerun_dir, diff, kinds
        )
        if verdict.verdict == "inconclusive":
            verdict.details.append(
                f"the {len(diff.same)} files both manifests list are bit-for-bit the same; "
                "what an incomplete manifest left out was never compared"
            )
        if rerun["status"] != record["status"]:
            verdict.details.insert(
                0, f"status: {record['status']} originally, {rerun['status']} in the rerun"
            )
        verdict.details.extend(nondeterministic_note(record, rerun))
    if verdict.data_changed:
        verdict.details.insert(
            0, "data changed (--allow-data-change): " + ", ".join(verdict.data_changed)
        )


def reproduce(
    backend: Backend,
    run_dir: Path,
    options: ReproduceOptions,
    *,
    say: Say,
    console: IO[bytes] | None = None,
) -> Verdict:
    record = read_record(run_dir)
    if record.get("fetched") is False:
        raise UsageError(
            f"run {record['run_id']}'s outputs are still where it ran: nothing to compare with",
            hint=f"reprise fetch {record['run_id']}",
        )
    load_manifest(run_dir)  # the original must have finished, with a valid manifest
    code = recorded_code(record, run_dir, options.repo)
    verdict = Verdict(
        run_id=record["run_id"], run_dir=str(run_dir), verdict="error", exit_code=EXIT_BAD_INPUT
    )
    unnamed_data(record, options)  # before anything is pulled or built
    code_path = ensure_code(code, run_dir.parent.parent, options.repo)
    inputs = rerun_inputs(record, run_dir, code)
    image = _image(backend, record, run_dir, code_path, options, say)
    # Described with the image there: a remote host's CPU and GPUs are seen from a container.
    current_host, verdict.target = _target(backend, record, image.id, options.strict, say)
    before_rerun(backend, run_dir, record, options.strict, say)  # each node's, on Slurm
    verdict.image = {
        "id": image.id,
        "source": image.record["source"],
        "recorded_id": record["image"]["id"],
    }
    if image.record.get("verified"):
        verdict.image["environment"] = image.record["verified"]["verdict"]
    say(f"image {image.id[:19]} ({image.record['source']})")
    paths = {**prepared_paths(backend, record, inputs, image, options, say), **options.data_paths}
    data, verdict.data_changed = check_data(record, paths, options.allow_data_change, say)
    inputs = dataclasses.replace(inputs, data=data, card=options.card)
    rerun_dir = execute(backend, inputs, image, say=say, console=console)
    verdict.target += after_rerun(backend, run_dir, record, rerun_dir, options.strict, say)
    _judge(backend, verdict, record, run_dir, rerun_dir, image.id)
    if options.bisect:
        from reprise.commands.bisect import narrow

        narrow(backend, verdict, run_dir, record, inputs, image, say=say, console=console)
    _record_verdict(run_dir, rerun_dir, verdict, current_host)
    for path in (run_dir, rerun_dir):
        render_card_safely(path, options.card, say)
    return verdict


def _prepare_of(record: dict[str, Any], options: ReproduceOptions, name: str) -> Prepare | None:
    """The user's own prepare step for a recorded prepared dataset: only when the project's
    settings name one that makes it, with the command the run recorded."""
    recorded = ((record.get("data") or {}).get(name) or {}).get("prepared") or {}
    prepare = options.settings.prepare if options.settings else None
    if not recorded or prepare is None or prepare.data != name:
        return None
    return prepare if list(prepare.command) == recorded.get("command") else None


def unnamed_data(record: dict[str, Any], options: ReproduceOptions) -> None:
    """Refuse early a dataset the run read that no path here names (and no prepare step of
    the user's project makes)."""
    recorded = record.get("data") or {}
    unnamed = [
        n
        for n in sorted(recorded)
        if n not in options.data_paths and not _prepare_of(record, options, n)
    ]
    if unnamed:
        shown = ", ".join(f"{n} (recorded at {recorded[n].get('path')!r})" for n in unnamed)
        raise UsageError(
            f"the run read dataset(s) {shown}, and no path here is named for them",
            hint="name each: --data NAME=PATH (or reproduce inside the project, whose settings "
            "name them or prepare them); reprise never reads a host path just because a record "
            "names it",
        )


def prepared_paths(
    backend: Backend,
    record: dict[str, Any],
    inputs: RunInputs,
    image: RunImage,
    options: ReproduceOptions,
    say: Say,
) -> dict[str, Path]:
    """Where the user's prepare step put (or now puts) each prepared dataset the run read."""
    from reprise.commands.prepare import ensure_prepared

    out: dict[str, Path] = {}
    for name in sorted(record.get("data") or {}):
        prepare = _prepare_of(record, options, name)
        if prepare is not None and name not in options.data_paths:
            ca = options.settings.ca_bundle if options.settings else None
            out[name] = ensure_prepared(
                backend,
                inputs,
                image,
                prepare,
                ca_bundle=ca,
                say=say,
                allow_network=options.allow_prepare,
            ).path
    return out


def check_data(
    record: dict[str, Any], paths: Mapping[str, Path], allow_change: bool, say: Say
) -> tuple[dict[str, Dataset], list[str]]:
    """Hash the datasets the run used, at the paths the user names (the project's settings or
    --data): a path recorded in run.json is never used as a host path by itself."""
    recorded: dict[str, Any] = record.get("data") or {}
    current = {
        name: dataclasses.replace(found, prepared=recorded[name].get("prepared"))
        for name, found in hash_datasets({name: paths[name] for name in recorded}).items()
    }
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


def reproduce_refs(
    refs: Sequence[str],
    *,
    host: str | None = None,
    context: str | None = None,
    runs_dir: Path,
    options: ReproduceOptions,
    say: Say,
    keep_going: bool,
    report: Callable[[Verdict], None] | None = None,
) -> list[Verdict]:
    """Reproduce each of ``refs`` (a run id, prefix, run directory or bundle file), handing each
    verdict to ``report`` as it comes. With ``keep_going``, an error becomes that run's
    `error` verdict and the next one goes on."""
    from reprise.edges.runstore import find_run
    from reprise.execution import open_backend, rerun_backend, resolve_target

    setting = options.settings.host if options.settings else None
    backend = open_backend(resolve_target(host=host, context=context, setting=setting))
    verdicts: list[Verdict] = []
    for ref in refs:
        run_dir: Path | None = None
        try:
            if Path(ref).is_file():
                from reprise.commands.bundle.importer import import_bundle
                from reprise.edges.docker import Engine

                say(f"importing bundle {ref}")
                run_dir = import_bundle(Engine.from_env(), Path(ref), runs_dir, say).run_dir
            else:
                run_dir = find_run(runs_dir, ref)
            say(f"reproducing {run_dir.name}")
            chosen = rerun_backend(read_record(run_dir), backend, named=bool(host or context))
            verdict = reproduce(chosen, run_dir, options, say=say)
        except RepriseError as exc:
            if not keep_going:
                raise
            say(exc.render())
            verdict = error_verdict(ref, run_dir, exc)
        verdicts.append(verdict)
        if report is not None:
            report(verdict)
    return verdicts
