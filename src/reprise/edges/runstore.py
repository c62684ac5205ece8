"""The run store on disk: run directories, atomic record writes, lookup by id, prefix or path.

Every record read goes through :func:`reprise.core.record.parse_record`; every name that
becomes a path here has passed :mod:`reprise.core.names`.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from reprise.core import keys, names
from reprise.core.errors import InvalidNameError, RunNotFoundError, StorageError, UsageError
from reprise.core.record import MAX_RECORD_BYTES, parse_record
from reprise.edges.runfiles import read_regular


def utc_now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def atomic_write(path: Path, data: bytes | str, *, durable: bool = True) -> None:
    """Write to a temporary file beside ``path``, then rename: never half-written.

    ``durable`` also fsyncs the file and its directory, so the write survives a power loss.
    Records that a later write supersedes anyway (a run's intermediate states, caches, the
    model card) skip it: the rename alone already protects them from a crashed process.
    """
    raw = data.encode("utf-8") if isinstance(data, str) else data
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, 0o644)
        with os.fdopen(fd, "wb") as fh:
            fh.write(raw)
            fh.flush()
            if durable:
                os.fsync(fh.fileno())
        Path(tmp).replace(path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    if durable:
        dir_fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)


@contextlib.contextmanager
def file_lock(path: Path) -> Iterator[None]:
    """An exclusive advisory lock on ``path`` (created if missing), released on exit."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as fh:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)


def dump_json(data: Any) -> str:
    return json.dumps(data, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def write_record(run_dir: Path, record: dict[str, Any], *, durable: bool = True) -> None:
    atomic_write(run_dir / keys.RUN_JSON, dump_json(record), durable=durable)


def read_record(run_dir: Path) -> dict[str, Any]:
    """The validated run.json of ``run_dir`` (RunNotFoundError when there is none, RecordError
    when it is damaged or hostile)."""
    path = run_dir / keys.RUN_JSON
    try:
        found = read_regular(run_dir, keys.RUN_JSON, MAX_RECORD_BYTES)
    except (FileNotFoundError, NotADirectoryError):
        found = None
    except OSError as exc:
        raise RunNotFoundError(
            f"{path} cannot be read: {exc.strerror or exc}", ref=str(run_dir)
        ) from exc
    if found is None:
        raise RunNotFoundError(f"{run_dir} holds no {keys.RUN_JSON}", ref=str(run_dir))
    data, truncated = found
    if truncated:
        raise RunNotFoundError(
            f"{path} is over {MAX_RECORD_BYTES} bytes: not a run record", ref=str(run_dir)
        )
    return parse_record(data, source=str(path))


def code_cache(runs_dir: Path, commit: str, subdir: str | None, patch_hash: str | None) -> Path:
    """Where the code at a commit (plus a patch) is kept beside the runs; every part validated.
    A project folder is named by its path's hash: no two folders share a place."""
    names.commit(commit, "code commit")
    sub = names.subdir(subdir)
    key = commit + (f"-{hashlib.sha256(sub.encode()).hexdigest()[:16]}" if sub else "")
    if patch_hash:
        key += f"-{names.sha256_digest(patch_hash, 'code patch hash')[7:23]}"
    return runs_dir / ".cache" / "code" / key


def check_runs_dir(runs_dir: Path) -> None:
    """The runs directory exists (or can be made) and takes writes: else one clear error,
    before anything is built or started."""
    from reprise.edges.container_config import OVERLAY_UNSAFE

    if any(c in str(runs_dir.resolve()) for c in OVERLAY_UNSAFE):
        raise UsageError(
            f"the runs directory {runs_dir} holds ',', ':' or '\\' in its path: runs mount "
            "folders of it as an overlay, whose options the kernel splits on those",
            hint="choose a runs-dir without those characters (runs-dir in [tool.reprise], "
            "REPRISE_RUNS_DIR or --runs-dir)",
        )
    if runs_dir.exists() and not runs_dir.is_dir():
        raise UsageError(
            f"the runs directory {runs_dir} is not a directory",
            hint="point runs-dir (or --runs-dir) at a directory, or move that file away",
        )
    try:
        runs_dir.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=runs_dir, prefix=".reprise-probe-"):
            pass
    except OSError as exc:
        raise StorageError(
            f"the runs directory {runs_dir} refuses writes: {exc.strerror or exc}",
            hint="make it writable, free space there, or choose another runs-dir",
        ) from exc


def create_run_dir(runs_dir: Path, experiment: str, run_id: str, files: dict[str, bytes]) -> Path:
    """Make the run directory with its first ``files``, all at once (staged, then renamed)."""
    parent = runs_dir / names.experiment(experiment)
    names.run_id(run_id)
    parent.mkdir(parents=True, exist_ok=True)
    final = parent / run_id
    staging = Path(tempfile.mkdtemp(prefix=f".{run_id}.", suffix=".partial", dir=parent))
    try:
        for sub in (*keys.RUN_JOB_DIRS, keys.RUN_OVERLAY_DIR):
            (staging / sub).mkdir()
        for rel, data in sorted(files.items()):
            target = staging / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(data)
        staging.chmod(0o755)
        staging.rename(final)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return final


def iter_run_dirs(runs_dir: Path) -> Iterator[Path]:
    """Every run directory under ``runs_dir`` (<experiment>/<run id>/run.json); entries whose
    names are not an experiment and a run id are not runs, and are skipped."""
    if not runs_dir.is_dir():
        return
    for exp in sorted(runs_dir.iterdir()):
        if not names.EXPERIMENT.fullmatch(exp.name) or not exp.is_dir() or exp.is_symlink():
            continue
        for run in sorted(exp.iterdir()):
            if (
                names.RUN_ID.fullmatch(run.name)
                and not run.is_symlink()
                and (run / keys.RUN_JSON).is_file()
            ):
                yield run


_NOT_FOUND_HINT = (
    "`reprise ls` lists the runs; pass a run id, a unique prefix, the id's last 8 characters, "
    "a name, latest or latest~N, or a run directory"
)
_REF = re.compile(r"[A-Za-z0-9][A-Za-z0-9._~-]{0,63}")


def find_run(runs_dir: Path, ref: str, *, experiment: str | None = None) -> Path:
    """A run directory from what a person calls it: a path; ``latest`` or ``latest~N`` (the
    newest run, or the N-th before it: of ``experiment`` when given, else of the whole runs
    directory); a run id; a run's name; a unique prefix of a run id, or its random suffix."""
    if "/" in ref or ref in (".", ".."):
        as_path = Path(ref)
        if (as_path / keys.RUN_JSON).is_file():
            return as_path
        raise RunNotFoundError(
            f"{ref} is not a run directory (it holds no {keys.RUN_JSON})",
            ref=ref,
            hint=_NOT_FOUND_HINT,
        )
    if not _REF.fullmatch(ref):
        raise InvalidNameError(
            f"{ref!r} is not a run id, a prefix of one, a name or latest~N",
            field="run",
            value=ref,
            hint="a run id looks like 20261123-143012-482913-5f3a9c1e; `reprise ls` lists them",
        )
    latest = names.LATEST.fullmatch(ref)
    if latest:
        return _latest(runs_dir, ref, int(latest.group(1) or 0), experiment)
    runs = list(iter_run_dirs(runs_dir))
    exact = [p for p in runs if p.name == ref]
    if not exact and names.RUN_NAME.fullmatch(ref):
        exact = _named(runs_dir, ref)
    suffix = names.RUN_SUFFIX.fullmatch(ref) is not None
    matches = exact or [
        p for p in runs if p.name.startswith(ref) or (suffix and p.name.endswith(f"-{ref}"))
    ]
    if not matches:
        raise RunNotFoundError(
            f"no run matches {ref!r} under {runs_dir}", ref=ref, hint=_NOT_FOUND_HINT
        )
    if len(matches) > 1:
        shown = ", ".join(p.name for p in matches[:5])
        raise RunNotFoundError(
            f"{ref!r} matches {len(matches)} runs ({shown}{', ...' if len(matches) > 5 else ''})",
            ref=ref,
            hint="give more of the run id, or the run's directory",
        )
    return matches[0]


def _summaries(runs_dir: Path) -> list[dict[str, Any]]:
    from reprise.edges.runindex import all_summaries

    return all_summaries(runs_dir)


def _latest(runs_dir: Path, ref: str, back: int, experiment: str | None) -> Path:
    runs = [
        s for s in _summaries(runs_dir) if experiment is None or s.get("experiment") == experiment
    ]
    where = f"of experiment {experiment} " if experiment else ""
    if back >= len(runs):
        raise RunNotFoundError(
            f"{ref}: there {'is' if len(runs) == 1 else 'are'} {len(runs)} "
            f"run{'' if len(runs) == 1 else 's'} {where}under {runs_dir}",
            ref=ref,
            hint="latest is the newest run, latest~1 the one before it; `reprise ls` lists them",
        )
    return Path(runs[back]["path"])


def _named(runs_dir: Path, name: str) -> list[Path]:
    return [Path(s["path"]) for s in _summaries(runs_dir) if s.get("name") == name]
