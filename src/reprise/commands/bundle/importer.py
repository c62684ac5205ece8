"""`reprise bundle import`: verify every member, load the image without its archive tags, prove
it is the recorded one, and only then register the run."""

from __future__ import annotations

import contextlib
import io
import shutil
import tarfile
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from reprise.commands.bundle.export import RECORD_FILES, RUNTIME_RECORD, code_state_of
from reprise.commands.bundle.image import ImageCheck, image_stream
from reprise.commands.bundle.inspect import open_stream, read_first_header, stream_error
from reprise.commands.inputs import code_dir
from reprise.core import keys
from reprise.core.bundleformat import (
    COPY_CHUNK,
    BoundedTarFile,
    HashingReader,
    Header,
    IndexEntry,
    check_against_index,
    iter_chunks,
    missing_members,
    verify_member,
)
from reprise.core.display import human_bytes, printable
from reprise.core.errors import BundleError, EngineError, RecordError
from reprise.core.image import sha256
from reprise.core.manifest import Manifest
from reprise.core.progress import Meter, Say
from reprise.core.record import FINAL_STATES, parse_record
from reprise.edges.docker import Engine
from reprise.edges.git import apply_patch
from reprise.edges.runstore import check_runs_dir, read_record, utc_now, write_record
from reprise.edges.streams import Prefetch

# Loaded images are tagged here, and only here: never under a project's own repository.
IMPORT_REPO = f"{keys.IMAGE_REPO_PREFIX}/imports"
_RUN_DIRS = tuple(f"run/{d}/" for d in keys.RUN_JOB_DIRS)


@dataclass
class ImportResult:
    run_dir: Path
    image_id: str
    loaded: bool  # False when the image was already in the engine
    already_imported: bool


def import_bundle(
    engine: Engine, path: Path, runs_dir: Path, say: Say, meter: Meter | None = None
) -> ImportResult:
    import zstandard

    check_runs_dir(runs_dir)
    staging = Path(tempfile.mkdtemp(prefix=".import-", dir=runs_dir))
    loaded_new: str | None = None
    try:
        try:
            with (
                open_stream(path, meter) as stream,
                BoundedTarFile.open(
                    fileobj=io.BufferedReader(Prefetch(stream), COPY_CHUNK),
                    mode="r|",
                    bufsize=COPY_CHUNK,
                ) as tar,
            ):
                header = read_first_header(tar, path)
                _check_space(runs_dir, header)
                image_id = str(header.image["id"])
                existed = engine.image_attrs(image_id) is not None
                seen: set[str] = set()
                outputs: dict[str, tuple[str, int]] = {}
                loaded = _stage_members(engine, tar, header, seen, staging, existed, outputs, say)
                missing = missing_members(header.members, seen)
                if missing:
                    raise BundleError(
                        f"{path} is truncated: {len(missing)} indexed members are missing (first: {missing[0]})"
                    )
        except (tarfile.TarError, zstandard.ZstdError, EOFError) as exc:
            raise stream_error(exc, path) from exc
        if not existed:
            loaded_new = _loaded_id(loaded, image_id)
        record, manifest = _verify_run(staging, header)
        checked, absent = _verify_outputs(manifest, outputs)
        patch = _patch(staging, record)
        _verify_image(engine, header, record)
        record["imported"] = {  # whatever the bundle's record said of it
            "at": utc_now(),
            "bundle": printable(path.name)[:200],
            "with_outputs": checked > 0,  # what came, not what the header says
            "outputs_checked": checked,
            "outputs_absent": absent,  # named in the manifest, not in the bundle
        }
        result = _register(
            engine, staging, runs_dir, header, record, patch, loaded=not existed, say=say
        )
        loaded_new = None  # registered: keep the image
        if record.get("volatile"):
            say(
                "warning: the bundle's run declares volatile outputs, recorded but never "
                "compared when it is reproduced or diffed: "
                + printable(", ".join(str(v) for v in record["volatile"]))
            )
        return result
    finally:
        shutil.rmtree(staging, ignore_errors=True)
        if loaded_new:
            _remove_untagged(engine, loaded_new)


def _remove_untagged(engine: Engine, image_id: str) -> None:
    """Take back an image this import loaded: without force, so that it can never untag
    anything (the load applied no tags)."""
    with contextlib.suppress(EngineError):
        engine.remove_image(image_id, force=False)


def _check_space(runs_dir: Path, header: Header) -> None:
    needed = sum(m.size for m in header.members if not m.path.startswith("image/"))
    free = shutil.disk_usage(runs_dir).free
    if needed + (64 << 20) > free:
        raise BundleError(
            f"the bundle's records, code and outputs take {human_bytes(needed)}; {runs_dir} has {human_bytes(free)} free",
            hint="free space in the runs directory, or import into another --runs-dir",
        )


def _loaded_id(loaded: list[str], fallback: str) -> str:
    for item in loaded:
        if item.startswith("sha256:"):
            return item
    return fallback


def _stage_target(staging: Path, entry: IndexEntry) -> Path:
    """Where a run/ or code/ member is staged; run/ holds only reprise's records and the
    run's writable folders."""
    path = entry.path
    if path.startswith("run/") and not (
        path.removeprefix("run/") in RECORD_FILES or path.startswith(_RUN_DIRS)
    ):
        raise BundleError(f"member {path!r} is not part of a run directory", member=path)
    return staging / path


def _stage_members(
    engine: Engine,
    tar: tarfile.TarFile,
    header: Header,
    seen: set[str],
    staging: Path,
    image_present: bool,
    outputs: dict[str, tuple[str, int]],
    say: Say,
) -> list[str]:
    """Check every member; stage run/ and code/ files, stream image/ ones into docker load.
    Each staged file of the job's folders is hashed as its manifest hashes it, into
    ``outputs`` (path in the run: blake3, size)."""
    loaded: list[str] = []
    index = header.by_path()
    image_id = str(header.image["id"])
    diff_ids = [str(d) for d in header.image.get("diff_ids") or []]
    while (info := tar.next()) is not None:  # continues after the header
        entry = check_against_index(info, index, seen)
        if entry.path.startswith("image/"):
            say("loading the image" if not image_present else "checking the image (present)")
            # When the engine already has the image nothing is loaded, so the layers are
            # hashed here; otherwise docker load checks them against the config itself.
            check = ImageCheck(hash_layers=image_present)
            members = image_stream(tar, info, entry, index, seen, check)
            if image_present:
                for _ in members:
                    pass
                check.verify(image_id, diff_ids)
            else:
                before = engine.image_ids()
                loaded = engine.load(members)
                try:
                    check.verify(image_id, diff_ids)
                except BundleError:
                    for ref in loaded:  # take back what this load added, and only that
                        attrs = engine.image_attrs(ref)
                        if attrs is not None and attrs["Id"] not in before:
                            _remove_untagged(engine, str(attrs["Id"]))
                    raise
            break
        if entry.kind == "dir":
            continue
        digest = _stage_file(tar, info, entry, _stage_target(staging, entry))
        if entry.path.startswith(_RUN_DIRS):
            outputs[entry.path.removeprefix("run/")] = (digest, info.size)
    return loaded


def _stage_file(
    tar: tarfile.TarFile, info: tarfile.TarInfo, entry: IndexEntry, target: Path
) -> str:
    """Stage one member, checked against the index; its blake3 (a manifest's hash too)."""
    source = tar.extractfile(info)
    assert source is not None
    reader = HashingReader(source, info.size)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        with target.open("xb") as fh:
            written = 0
            for chunk in iter_chunks(reader):  # type: ignore[arg-type]
                fh.write(chunk)
                written += len(chunk)
        target.chmod(0o755 if entry.mode & 0o100 else 0o644)
    except OSError as exc:
        raise BundleError(
            f"member {entry.path!r} cannot be staged: {exc.strerror or exc}", member=entry.path
        ) from exc
    digest = str(reader.hasher.hexdigest())
    verify_member(entry, digest, written)
    return digest


def _verify_outputs(
    manifest: Manifest | None, outputs: dict[str, tuple[str, int]]
) -> tuple[int, int]:
    """Every file of the job's folders the bundle carries is the one its manifest names (by
    blake3 and size); only the console log and the runtime record are not in a manifest.
    Returns how many were checked, and how many regular files the manifest names that the
    bundle does not carry."""
    unlisted = {keys.RUN_LOG, RUNTIME_RECORD}
    checked = [p for p in outputs if p not in unlisted]
    if not checked:
        return 0, sum(1 for e in manifest.files if e.kind == "file") if manifest else 0
    if manifest is None:
        raise BundleError(
            f"the bundle carries outputs ({printable(checked[0])}) but no run/manifest.json "
            "to check them against",
            member=f"run/{checked[0]}",
        )
    listed = manifest.by_path()
    for rel in sorted(checked):
        entry = listed.get(rel)
        digest, size = outputs[rel]
        if entry is None or entry.kind != "file" or (entry.hash, entry.size) != (digest, size):
            why = "is not in" if entry is None else "is not the file named in"
            raise BundleError(
                f"run/{printable(rel)} {why} the run's manifest: the outputs were altered "
                "after the run, or the bundle was mis-assembled",
                member=f"run/{rel}",
            )
    absent = sum(1 for e in listed.values() if e.kind == "file" and e.path not in outputs)
    return len(checked), absent


def _verify_run(staging: Path, header: Header) -> tuple[dict[str, Any], Manifest | None]:
    """The staged run.json: a valid record (every name checked), of the run the header names,
    finished, made with the image the bundle carries."""
    path = staging / "run" / keys.RUN_JSON
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise BundleError(f"the bundle has no run/run.json: {exc.strerror or exc}") from exc
    try:
        record = parse_record(raw, source="the bundle's run/run.json")
    except RecordError as exc:
        raise BundleError(exc.message, member="run/run.json") from exc
    if record["run_id"] != header.run_id or record["experiment"] != header.experiment:
        raise BundleError(
            f"run/run.json is run {record['run_id']!r} of {record['experiment']!r}, "
            f"the header says {header.run_id!r} of {header.experiment!r}",
            member="run/run.json",
        )
    manifest = _verify_manifest(staging / "run" / keys.RUN_MANIFEST, record.get("manifest"))
    if record["run_id"][:15] > (datetime.now(UTC) + timedelta(days=1)).strftime("%Y%m%d-%H%M%S"):
        raise BundleError(  # it would be every later "latest" here
            f"run {record['run_id']} is dated in the future: a run id is when the run began",
            member="run/run.json",
        )
    if record["status"] not in FINAL_STATES:
        raise BundleError(
            f"run/run.json says the run is still {record['status']!r}: only finished runs are bundled",
            member="run/run.json",
        )
    return record, manifest


def _verify_manifest(path: Path, recorded: dict[str, Any] | None) -> Manifest | None:
    """The bundle's manifest, parsed once: the one its record names (by the hash of its text,
    its size and whether it is complete), and valid; a record that names none comes without
    one."""
    member = f"run/{keys.RUN_MANIFEST}"
    if not path.is_file():
        if recorded:
            raise BundleError(f"run.json names a manifest, and the bundle has no {member}")
        return None
    raw = path.read_bytes()
    try:
        manifest = Manifest.from_json(raw)
    except ValueError as exc:
        raise BundleError(f"{member} is not a valid manifest: {exc}", member=member) from exc
    if not recorded:
        raise BundleError(f"the bundle has a {member}, and its run.json names none", member=member)
    said = (recorded.get("hash"), recorded.get("files"), recorded.get("complete"))
    if said != (sha256(raw), len(manifest.files), manifest.complete):
        raise BundleError(
            f"{member} is not the manifest run.json names (hash {str(said[0])[:19]}): the "
            "outputs' record was altered after the run",
            member=member,
        )
    return manifest


def _verify_image(engine: Engine, header: Header, record: dict[str, Any]) -> None:
    recorded = str(record["image"]["id"])
    carried = str(header.image["id"])
    if carried != recorded:
        raise BundleError(
            f"the bundle carries image {carried}, but its run was made with {recorded}",
            hint="the bundle was altered or mis-assembled; ask for a fresh export",
        )
    attrs = engine.image_attrs(recorded)
    if attrs is None:
        raise BundleError(
            f"after docker load, the recorded image {recorded} is not in the engine: the bundle's image is another one"
        )
    layers = list(attrs["RootFS"]["Layers"])
    if layers != list(header.image.get("diff_ids") or []):
        raise BundleError(
            f"image {recorded}: its layers do not match the diff ids the bundle recorded"
        )


def _tag_imported(engine: Engine, image_id: str, run_id: str, say: Say) -> None:
    """Tag a loaded, proven image as reprise/imports:<run id>, unless that tag exists: an
    import never moves a tag."""
    ref = f"{IMPORT_REPO}:{run_id}"
    current = engine.image_attrs(ref)
    if current is None:
        engine.tag(image_id, IMPORT_REPO, run_id)
    elif current.get("Id") != image_id:
        say(f"warning: {ref} already names another image: left as it is (the run uses the id)")


def _register(
    engine: Engine,
    staging: Path,
    runs_dir: Path,
    header: Header,
    record: dict[str, Any],
    patch: bytes,
    *,
    loaded: bool,
    say: Say,
) -> ImportResult:
    image_id = str(record["image"]["id"])
    if loaded:
        _tag_imported(engine, image_id, record["run_id"], say)
    final = runs_dir / record["experiment"] / record["run_id"]
    if final.exists():
        existing = read_record(final)
        if existing.get("image", {}).get("id") != image_id or existing.get("code") != record.get(
            "code"
        ):
            raise BundleError(
                f"a different run {header.run_id} already exists at {final}",
                hint="move it away, or import into another --runs-dir",
            )
        return ImportResult(final, image_id, loaded, already_imported=True)
    # The code goes into the cache only now, past every check, and only where nothing is:
    # a folder made here from git stays; a run at that commit made here later replaces this
    # one with the repository's own tree (edges.git.export_code trusts only what it made).
    code_dest = code_dir(runs_dir, code_state_of(record, patch))
    if not code_dest.exists() and (staging / "code").is_dir():
        code_src = staging / "code"
        if patch:
            apply_patch(code_src, patch)
        code_dest.parent.mkdir(parents=True, exist_ok=True)
        code_src.rename(code_dest)
    write_record(staging / "run", record)
    final.parent.mkdir(parents=True, exist_ok=True)
    for sub in (*keys.RUN_JOB_DIRS, keys.RUN_OVERLAY_DIR):
        (staging / "run" / sub).mkdir(exist_ok=True)
    (staging / "run").rename(final)
    return ImportResult(final, image_id, loaded, already_imported=False)


def _patch(staging: Path, record: dict[str, Any]) -> bytes:
    """The patch a dirty run's code needs, the one its record names by hash."""
    if not record["code"].get("dirty"):
        return b""
    try:
        patch = (staging / "run" / keys.RUN_PATCH).read_bytes()
    except OSError:
        raise BundleError(
            f"the run's code was dirty, but the bundle has no run/{keys.RUN_PATCH}",
            member=f"run/{keys.RUN_PATCH}",
        ) from None
    recorded = record["code"].get("patch_hash")
    if recorded and sha256(patch) != recorded:
        raise BundleError(
            f"run/{keys.RUN_PATCH} is not the patch run.json names ({recorded[:19]})",
            member=f"run/{keys.RUN_PATCH}",
        )
    return patch


def import_file(path: Path, runs_dir: Path, say: Say, meter: Meter | None = None) -> ImportResult:
    """`reprise bundle import`, into this machine's engine; ``meter`` counts the bundle's
    bytes as they are read."""
    return import_bundle(Engine.from_env(), path, runs_dir, say, meter)
