"""`reprise bundle export`: the run's records, its code at the commit, optionally its outputs,
and `docker save` of its image, in one deterministic zstd-compressed tar, index first."""

from __future__ import annotations

import io
import os
import shutil
import tarfile
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from reprise.commands.inputs import code_dir
from reprise.commands.verdict import load_manifest
from reprise.core import keys
from reprise.core.bundleformat import (
    COPY_CHUNK,
    END_OF_ARCHIVE,
    HEADER_NAME,
    Header,
    IndexEntry,
    MemberWriter,
    member_header,
    padding,
)
from reprise.core.errors import BundleError, ImageUnavailableError, RecordError, UsageError
from reprise.core.progress import Meter, NoMeter, Say
from reprise.edges.docker import Engine
from reprise.edges.git import CodeState, export_code
from reprise.edges.runfiles import PlantedFileError, open_regular, read_regular
from reprise.edges.runstore import read_record
from reprise.edges.streams import ChunkReader, Prefetch, copy_file

ZSTD_LEVEL = 3
# reprise's own files of a run directory that a bundle carries.
RECORD_FILES = (
    keys.RUN_JSON,
    keys.RUN_CONFIG,
    keys.RUN_DOCKERFILE,
    keys.RUN_LOCK,
    keys.RUN_PATCH,
    keys.RUN_MANIFEST,
    keys.RUN_FAILED,
)
RUNTIME_RECORD = f"{keys.RUN_RUNTIME_DIR}/runtime.json"


def _compressor() -> Any:
    import zstandard

    # threads=-1: one worker per core. zstd's multi-threaded output does not depend on the
    # number of workers or on how the input is chunked, so exports stay byte-identical.
    return zstandard.ZstdCompressor(level=ZSTD_LEVEL, threads=-1)


# --- export --------------------------------------------------------------------------------
def _code_files(record: dict[str, Any], run_dir: Path, repo: Path | None, tmp: Path) -> Path:
    """The code tree at the recorded commit, without the patch (that is run/code.patch)."""
    code = record["code"]
    if repo is not None:
        dest = tmp / "code"
        export_code(repo, code["commit"], b"", dest, subdir=code.get("subdir") or "")
        return dest
    cached = code_dir(run_dir.parent.parent, code_state_of(record, b""))
    if cached.is_dir():
        return cached
    raise UsageError(
        f"the code of commit {code['commit'][:12]} is neither in a git repository here nor cached",
        hint="export from inside the project's repository, or pass --project",
    )


def code_state_of(record: dict[str, Any], patch: bytes) -> CodeState:
    code = record["code"]
    return CodeState(
        root=Path(),
        commit=code["commit"],
        branch=code.get("branch"),
        remote=code.get("remote"),
        dirty=bool(patch),
        patch=patch,
        subdir=code.get("subdir") or "",
    )


def _tree_files(root: Path) -> list[tuple[str, Path]]:
    out = []
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        dirnames.sort()
        for name in sorted(filenames):
            full = Path(dirpath) / name
            if full.is_symlink():
                target = full.resolve()
                if not target.is_file() or not target.is_relative_to(root.resolve()):
                    continue  # dangling, or outside the tree: not part of the code
            out.append((full.relative_to(root).as_posix(), full))
    return sorted(out)


def _mode(path: Path) -> int:
    return 0o755 if path.stat().st_mode & 0o100 else 0o644


def _write_small(
    small: Path, record: dict[str, Any], run_dir: Path, repo: Path | None, tmp: Path
) -> list[IndexEntry]:
    """Records and code: small, written uncompressed, compressed as frame 1 at the end."""
    with small.open("wb") as fh:
        writer = MemberWriter(fh)
        for name in RECORD_FILES:
            data = _read_own(run_dir, name)
            if data is not None:
                writer.add_bytes(f"run/{name}", data)
        for rel, path in _tree_files(_code_files(record, run_dir, repo, tmp)):
            writer.add_bytes(f"code/{rel}", path.read_bytes(), mode=_mode(path))
        return list(writer.index)


class _Counted:
    """A writer that tells a meter each chunk's size as it passes."""

    def __init__(self, out: Any, meter: Meter) -> None:
        self.out, self.meter = out, meter

    def write(self, data: bytes) -> int:
        written: int = self.out.write(data)
        self.meter(len(data))
        return written


def _write_spool(
    spool: Path,
    engine: Engine,
    image_id: str,
    run_dir: Path,
    with_outputs: bool,
    say: Say,
    meter: Meter,
) -> list[IndexEntry]:
    """Outputs and the image: streamed through zstd into the spool, hashed as they pass
    (``meter`` counts them, before compression)."""
    with spool.open("wb") as raw:
        zw = _compressor().stream_writer(raw, closefd=False)
        big = MemberWriter(_Counted(zw, meter))  # type: ignore[arg-type]
        if with_outputs:
            for rel in _output_files(run_dir, say):
                try:
                    fd = open_regular(run_dir, rel)  # never through a link the job planted
                except OSError as exc:  # changed since the manifest was made
                    why = (
                        exc.strerror
                        if isinstance(exc, PlantedFileError)
                        else f"{rel}: {exc.strerror or exc}"
                    )
                    say(f"warning: not bundled: {why} (its manifest entry stays)")
                    continue
                with os.fdopen(fd, "rb") as src:
                    big.add_stream(f"run/{rel}", os.fstat(fd).st_size, src)
        say(f"saving image {image_id[:19]}")
        _add_image(big, engine.save(image_id))
        zw.write(END_OF_ARCHIVE)
        zw.close()
        return big.index


def _assemble(out: Path, partial: Path, header: Header, small: Path, spool: Path) -> None:
    """The header's frame, the small frame, the spool; fsynced, then renamed into place."""
    with partial.open("wb") as fh:
        head = header.to_bytes()
        cw = _compressor().stream_writer(fh, closefd=False)
        cw.write(member_header(HEADER_NAME, len(head)) + head + padding(len(head)))
        with small.open("rb") as src:
            shutil.copyfileobj(src, cw, 1 << 20)
        cw.close()
        with spool.open("rb") as src:
            copy_file(src, fh)
        fh.flush()
        os.fsync(fh.fileno())
    partial.replace(out)


def export_bundle(
    engine: Engine,
    run_dir: Path,
    out: Path,
    *,
    with_outputs: bool,
    repo: Path | None,
    say: Say,
    meter: Meter | None = None,
) -> Header:
    record = read_record(run_dir)
    image_id = str(record["image"]["id"])
    attrs = engine.image_attrs(image_id)
    if attrs is None:
        raise ImageUnavailableError(
            f"the run's image {image_id} is not in this engine",
            hint="pull it first (reprise reproduce --registry ...), or rebuild it",
        )
    image_info = {
        "id": image_id,
        "diff_ids": list(attrs["RootFS"]["Layers"]),
        "tag": record["image"]["tag"],
        "repo_digest": record["image"].get("repo_digest"),
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".reprise-export-", dir=out.parent) as tmp_name:
        tmp = Path(tmp_name)
        small, spool = tmp / "small.tar", tmp / "spool.zst"
        small_index = _write_small(small, record, run_dir, repo, tmp)
        meter = meter or NoMeter()
        outputs = sum(e.size for e in load_manifest(run_dir).files) if with_outputs else 0
        meter.start(outputs + int(attrs.get("Size") or 0))
        big_index = _write_spool(spool, engine, image_id, run_dir, with_outputs, say, meter)
        header = Header(
            run_id=record["run_id"],
            experiment=record["experiment"],
            image=image_info,
            members=tuple(small_index + big_index),
            with_outputs=with_outputs,
        )
        _assemble(out, tmp / "bundle.partial", header, small, spool)
    return header


def _read_own(run_dir: Path, name: str) -> bytes | None:
    try:
        found = read_regular(run_dir, name, 256 << 20)
    except OSError as exc:
        raise RecordError(f"{run_dir / name} cannot be read: {exc.strerror or exc}") from exc
    if found is not None and found[1]:
        raise RecordError(f"{run_dir / name} is over 256 MiB: not a record reprise wrote")
    return None if found is None else found[0]


def _output_files(run_dir: Path, say: Say) -> list[str]:
    """The run's regular output files (links, hard links included, and other entries stay
    named in its manifest only: bundles carry no links), its console log and its runtime
    record."""
    entries = load_manifest(run_dir).files
    linked = [e.path for e in entries if e.kind == "hardlink"]
    if linked:
        shown = ", ".join(linked[:5]) + (" ..." if len(linked) > 5 else "")
        say(
            f"note: {len(linked)} hard-linked outputs are named in the manifest, not bundled "
            f"(bundles carry no links): {shown}"
        )
    files = {e.path for e in entries if e.kind == "file"}
    for extra in (keys.RUN_LOG, RUNTIME_RECORD):
        try:
            os.close(open_regular(run_dir, extra))
        except OSError:
            continue
        files.add(extra)
    return sorted(files)


def _add_image(writer: MemberWriter, save_stream: Iterator[bytes]) -> None:
    # The engine's stream is read ahead in a thread: receiving it overlaps with hashing.
    reader = io.BufferedReader(Prefetch(ChunkReader(save_stream)), COPY_CHUNK)  # type: ignore[arg-type]
    with tarfile.open(fileobj=reader, mode="r|", bufsize=COPY_CHUNK) as tar:
        for info in tar:
            name = f"image/{info.name}"
            if info.isdir():
                writer.add_dir(name)
            elif info.isfile():
                source = tar.extractfile(info)
                assert source is not None
                writer.add_stream(name, info.size, source)
            else:
                raise BundleError(f"docker save produced an unsupported member {info.name!r}")


def export_run(
    run_dir: Path,
    out: Path,
    *,
    with_outputs: bool,
    repo: Path | None,
    say: Say,
    meter: Meter | None = None,
) -> Header:
    """`reprise bundle export`, from this machine's engine; ``meter`` counts the outputs'
    and the image's bytes as they are packed."""
    return export_bundle(
        Engine.from_env(),
        run_dir,
        out,
        with_outputs=with_outputs,
        repo=repo,
        say=say,
        meter=meter,
    )
