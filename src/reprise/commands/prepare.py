"""A prepare step: the one part of a run that has network. It runs the project's
``[tool.reprise] prepare`` command in the run's image, with the code at the commit, writing
into ``$REPRISE_PREPARE_DIR``; what it wrote becomes a content-hashed dataset, kept in the
runs directory (keyed by the command, the image and the commit) and mounted read-only into
the hermetic run at ``/workspace/data/<name>`` like any dataset."""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from dataclasses import replace
from pathlib import Path
from typing import Any

from reprise.commands.build import RunImage
from reprise.commands.inputs import RunInputs, code_dir
from reprise.core import keys
from reprise.core.errors import RepriseError, UsageError
from reprise.core.failures import explain as explain_failure
from reprise.core.image import sha256
from reprise.core.progress import Say
from reprise.core.settings import Prepare
from reprise.edges.datasets import Dataset, hash_dataset
from reprise.edges.git import export_code
from reprise.edges.runstore import atomic_write
from reprise.edges.trees import chown_tree, remove_tree
from reprise.execution.backend import Backend, DataInput, JobSpec

PREPARE_DIR = f"{keys.CONTAINER_RUN}/data"


class PrepareError(RepriseError):
    """The prepare step failed (its command exited non-zero)."""

    exit_code = 1


def prepare_key(prepare: Prepare, image_id: str, inputs: RunInputs) -> str:
    """What makes the prepared data what it is: its command, the image, the code."""
    parts = {
        "command": list(prepare.command),
        "data": prepare.data,
        "image": image_id,
        "commit": inputs.code.commit,
        "patch": inputs.code.patch_hash,
    }
    return sha256(json.dumps(parts, sort_keys=True).encode()).split(":")[1]


def _job(
    prepare: Prepare, image: RunImage, staging: Path, inputs: RunInputs, code: Path, ca: Path | None
) -> JobSpec:
    uid = keys.CONTAINER_UID if os.getuid() == 0 else os.getuid()
    gid = keys.CONTAINER_GID if os.getuid() == 0 else os.getgid()
    env = {
        "REPRISE_PREPARE_DIR": PREPARE_DIR,
        keys.ENV_SEED: str(inputs.seed),
        keys.ENV_THREADS: str(inputs.threads),
    }
    data: tuple[DataInput, ...] = ()
    if ca is not None:
        data = (DataInput("ca", ca, True),)
        for name in ("SSL_CERT_FILE", "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE", "PIP_CERT"):
            env[name] = f"{keys.CONTAINER_DATA}/ca/{ca.name}"  # where the file is mounted
    return JobSpec(
        image=image.id,
        command=prepare.command,
        environment=env,
        run_dir=staging,
        writable=("data",),
        config=staging / keys.RUN_CONFIG,
        code=code,
        user=f"{uid}:{gid}",
        labels={"org.reprise.prepare": prepare.data},
        data=data,
        work=keys.RUN_WORK_DIR,
        workdir=inputs.workdir,
        network="host",
    )


def _run(backend: Backend, spec: JobSpec, say: Say) -> None:
    job = backend.create(spec)
    try:
        lines: list[str] = []
        partial = b""
        stream = backend.attach(job)
        backend.start(job)
        for chunk in stream:
            *done, partial = (partial + chunk).split(b"\n")
            for line in done:
                lines.append(line.decode("utf-8", "replace"))
                say(f"prepare: {lines[-1]}")
            lines = lines[-200:]
        if partial:
            lines.append(partial.decode("utf-8", "replace"))
            say(f"prepare: {lines[-1]}")
        result = backend.wait(job)
        backend.collect(job, spec.run_dir, say)
    finally:
        with contextlib.suppress(RepriseError):
            backend.remove(job)
    if result.status_code != 0:
        failure = explain_failure("\n".join(lines[-60:]), result.status_code, None)
        raise PrepareError(
            f"the prepare step failed: {failure.reason}",
            hint="fix [tool.reprise] prepare's command (it runs with network, before the run); "
            "nothing was kept",
        )


def ensure_prepared(
    backend: Backend,
    inputs: RunInputs,
    image: RunImage,
    prepare: Prepare,
    *,
    ca_bundle: Path | None,
    say: Say,
    allow_network: bool = True,
) -> Dataset:
    """The dataset the prepare step makes: kept from an earlier run when its key matches,
    else made now (with network) and kept. Without ``allow_network`` (a rerun of a recorded
    run, whose code and image may be anyone's) a step that would have to run is refused."""
    key = prepare_key(prepare, image.id, inputs)
    store = inputs.runs_dir / ".data"
    dest = store / f"{prepare.data}-{key[:16]}"
    info = {"command": list(prepare.command), "key": key, "image": image.id}
    if not dest.is_dir() and not allow_network:
        raise UsageError(
            f"dataset {prepare.data!r} was made by a prepare step, which would run now with "
            "network, with the recorded run's code and image",
            hint=f"pass --data {prepare.data}=PATH, or --allow-prepare if you trust the run "
            "(a bundle's code and image are whoever made it)",
        )
    if not dest.is_dir():
        say(f"prepare: {' '.join(prepare.command)} (with network, into dataset {prepare.data!r})")
        code = code_dir(inputs.runs_dir, inputs.code)
        c = inputs.code
        export_code(c.root, c.commit, c.patch, code, subdir=c.subdir)
        store.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{prepare.data}.", suffix=".partial", dir=store))
        try:
            for sub in ("data", keys.RUN_WORK_DIR, keys.RUN_OVERLAY_DIR):
                (staging / sub).mkdir()
            (staging / keys.RUN_CONFIG).write_text("{}\n")
            if os.getuid() == 0:
                for sub in ("data", keys.RUN_WORK_DIR):
                    os.chown(staging / sub, keys.CONTAINER_UID, keys.CONTAINER_GID)
            _run(backend, _job(prepare, image, staging, inputs, code, ca_bundle), say)
            if os.getuid() == 0:
                chown_tree(staging / "data", 0, 0)
            (staging / "data").rename(dest)
        finally:
            remove_tree(staging)
    dataset = hash_dataset(prepare.data, dest)
    atomic_write(dest.with_suffix(".json"), json.dumps({**info, "hash": dataset.hash}, indent=1))
    return replace(dataset, prepared=info)


def with_prepared(
    backend: Backend,
    inputs: RunInputs,
    image: RunImage,
    prepare: Prepare | None,
    *,
    ca_bundle: Path | None,
    say: Say,
) -> RunInputs:
    """``inputs`` with the prepare step's dataset among its data (when there is a step)."""
    if prepare is None:
        return inputs
    dataset = ensure_prepared(backend, inputs, image, prepare, ca_bundle=ca_bundle, say=say)
    data: dict[str, Any] = {**inputs.data, prepare.data: dataset}
    return replace(inputs, data=data)
