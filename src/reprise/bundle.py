"""`reprise bundle export|inspect|import`: a run as one self-contained, verifiable file.

Export streams `docker save` through zstd (multi-threaded, level 3) into a spool file while
hashing every member, then writes the header with the full index as the file's first zstd
frame and appends the spool: memory stays flat whatever the image size, and the index comes
first so that import can check every member before using it.

Import checks each member (name, type, size, hash) against the index as it streams, stages the
run inside the runs directory, feeds the image members to `docker load`, proves the loaded
image is the recorded one (image id and layer diff ids: `docker load` drops RepoDigests), and
only then registers the run. On any failure nothing is left behind.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import queue
import shutil
import tarfile
import tempfile
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from reprise import keys
from reprise.bundleformat import (
    COPY_CHUNK,
    END_OF_ARCHIVE,
    HEADER_LIMIT,
    HEADER_NAME,
    BundleError,
    HashingReader,
    Header,
    IndexEntry,
    MemberWriter,
    check_against_index,
    iter_chunks,
    member_header,
    missing_members,
    padding,
    verify_member,
)
from reprise.engine import Engine, parse_image_ref
from reprise.errors import ImageUnavailableError, ProjectError
from reprise.gitrepo import CodeState, apply_patch, export_code
from reprise.manifest import Manifest
from reprise.runner import code_dir
from reprise.runstore import read_record

Say = Callable[[str], None]
ZSTD_LEVEL = 3
RECORD_FILES = (
    keys.RUN_JSON,
    keys.RUN_CONFIG,
    keys.RUN_DOCKERFILE,
    keys.RUN_LOCK,
    keys.RUN_PATCH,
    keys.RUN_MANIFEST,
    keys.RUN_FAILED,
)


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
    cached = code_dir(run_dir.parent.parent, _code_state(record, b""))
    if cached.is_dir():
        return cached
    raise ProjectError(
        f"the code of commit {code['commit'][:12]} is neither in a git repository here nor cached",
        hint="export from inside the project's repository, or pass --project",
    )


def _code_state(record: dict[str, Any], patch: bytes) -> CodeState:
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


def export_bundle(
    engine: Engine,
    run_dir: Path,
    out: Path,
    *,
    with_outputs: bool,
    repo: Path | None,
    say: Say,
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
        small = tmp / "small.tar"
        spool = tmp / "spool.zst"
        # Records and code: small, written uncompressed first, compressed as frame 1 at the end.
        with small.open("wb") as fh:
            writer = MemberWriter(fh)
            for name in RECORD_FILES:
                path = run_dir / name
                if path.is_file():
                    writer.add_bytes(f"run/{name}", path.read_bytes())
            for rel, path in _tree_files(_code_files(record, run_dir, repo, tmp)):
                writer.add_bytes(f"code/{rel}", path.read_bytes(), mode=_mode(path))
            small_index = list(writer.index)
        # Outputs and the image: streamed through zstd into the spool, hashed as they pass.
        with spool.open("wb") as raw:
            zw = _compressor().stream_writer(raw, closefd=False)
            big = MemberWriter(zw)
            if with_outputs:
                for rel in _output_files(run_dir):
                    path = run_dir / rel
                    with path.open("rb") as src:
                        big.add_stream(f"run/{rel}", path.stat().st_size, src)
            say(f"saving image {image_id[:19]}")
            _add_image(big, engine.save(image_id))
            zw.write(END_OF_ARCHIVE)
            zw.close()
        header = Header(
            run_id=record["run_id"],
            experiment=record["experiment"],
            image=image_info,
            members=tuple(small_index + big.index),
            with_outputs=with_outputs,
        )
        partial = tmp / "bundle.partial"
        with partial.open("wb") as fh:
            head = header.to_bytes()
            cw = _compressor().stream_writer(fh, closefd=False)
            cw.write(member_header(HEADER_NAME, len(head)) + head + padding(len(head)))
            with small.open("rb") as src:
                shutil.copyfileobj(src, cw, 1 << 20)
            cw.close()
            with spool.open("rb") as src:
                _copy_file(src, fh)
            fh.flush()
            os.fsync(fh.fileno())
        partial.replace(out)
    return header


def _copy_file(src: IO[bytes], dst: IO[bytes]) -> None:
    dst.flush()
    size = os.fstat(src.fileno()).st_size
    offset = 0
    try:
        while offset < size:
            n = os.copy_file_range(src.fileno(), dst.fileno(), size - offset)
            if n == 0:
                break
            offset += n
    except OSError:
        src.seek(offset)
        shutil.copyfileobj(src, dst, 1 << 20)
        return
    if offset < size:
        src.seek(offset)
        shutil.copyfileobj(src, dst, 1 << 20)
    dst.seek(0, os.SEEK_END)


def _output_files(run_dir: Path) -> list[str]:
    manifest = Manifest.from_json((run_dir / keys.RUN_MANIFEST).read_text())
    extra = [keys.RUN_LOG, f"{keys.RUN_RUNTIME_DIR}/runtime.json"]
    return sorted({e.path for e in manifest.files} | {p for p in extra if (run_dir / p).is_file()})


class _ChunkReader:
    """A file-like view of an iterator of byte chunks (the `docker save` stream)."""

    def __init__(self, chunks: Iterator[bytes]) -> None:
        self.chunks = chunks
        self.buffer = bytearray()
        self.offset = 0

    def read(self, size: int = -1) -> bytes:
        while size < 0 or len(self.buffer) - self.offset < size:
            try:
                chunk = next(self.chunks)
            except StopIteration:
                break
            if self.offset:  # drop what was read already, once per chunk (not per read)
                del self.buffer[: self.offset]
                self.offset = 0
            self.buffer += chunk
        end = len(self.buffer) if size < 0 else min(len(self.buffer), self.offset + size)
        data = bytes(self.buffer[self.offset : end])
        self.offset = end
        return data


class _Prefetch(io.RawIOBase):
    """Reads ahead from ``source`` in a thread (zstd decompression releases the GIL), so that
    decompressing and hashing or loading run side by side on two cores."""

    def __init__(self, source: IO[bytes], chunk: int = COPY_CHUNK, depth: int = 8) -> None:
        self.queue: queue.Queue[bytes | BaseException | None] = queue.Queue(maxsize=depth)
        self.current = memoryview(b"")
        self.done = False
        self.thread = threading.Thread(target=self._fill, args=(source, chunk), daemon=True)
        self.thread.start()

    def _fill(self, source: IO[bytes], chunk: int) -> None:
        try:
            while data := source.read(chunk):
                self.queue.put(data)
            self.queue.put(None)
        except BaseException as exc:  # noqa: BLE001 - handed to the reader, which raises it
            self.queue.put(exc)

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        while not self.current:
            if self.done:
                return 0
            item = self.queue.get()
            if item is None:
                self.done = True
                return 0
            if isinstance(item, BaseException):
                self.done = True
                raise item
            self.current = memoryview(item)
        n = min(len(buffer), len(self.current))
        buffer[:n] = self.current[:n]
        self.current = self.current[n:]
        return n


def _add_image(writer: MemberWriter, save_stream: Iterator[bytes]) -> None:
    # The engine's stream is read ahead in a thread: receiving it overlaps with hashing.
    reader = io.BufferedReader(_Prefetch(_ChunkReader(save_stream)), COPY_CHUNK)  # type: ignore[arg-type]
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


# --- inspect -------------------------------------------------------------------------------
def _open_stream(path: Path) -> Any:
    import zstandard

    try:
        fh = path.open("rb")
    except FileNotFoundError:
        raise BundleError(f"no bundle at {path}", hint="check the path") from None
    return zstandard.ZstdDecompressor().stream_reader(fh, read_size=1 << 20, closefd=True)


def _stream_error(exc: BaseException, path: Path) -> BundleError:
    return BundleError(f"{path} is truncated or corrupt ({type(exc).__name__}: {exc})")


def _read_header(tar: tarfile.TarFile, path: Path) -> Header:
    first = tar.next()
    if first is None or first.name != HEADER_NAME:
        raise BundleError(f"{path} does not start with {HEADER_NAME}: not a reprise bundle")
    if not first.isfile() or first.size > HEADER_LIMIT:
        raise BundleError(
            f"{path}: the bundle header is not a file of sane size", member=HEADER_NAME
        )
    src = tar.extractfile(first)
    assert src is not None
    return Header.parse(src.read())


def read_header(path: Path) -> Header:
    """The bundle's header and index, reading only its first member."""
    import zstandard

    try:
        with (
            _open_stream(path) as stream,
            tarfile.open(fileobj=stream, mode="r|", bufsize=COPY_CHUNK) as tar,
        ):
            return _read_header(tar, path)
    except (tarfile.TarError, zstandard.ZstdError, EOFError, OSError) as exc:
        raise _stream_error(exc, path) from exc


def describe(header: Header) -> dict[str, Any]:
    kinds: dict[str, dict[str, int]] = {}
    for m in header.members:
        part = m.path.split("/", 1)[0]
        k = kinds.setdefault(part, {"files": 0, "bytes": 0})
        k["files"] += m.kind == "file"
        k["bytes"] += m.size
    return {
        "run_id": header.run_id,
        "experiment": header.experiment,
        "image": header.image,
        "with_outputs": header.with_outputs,
        "parts": kinds,
        "members": [m.to_dict() for m in header.members],
    }


# --- import --------------------------------------------------------------------------------
@dataclass
class ImportResult:
    run_dir: Path
    image_id: str
    loaded: bool  # False when the image was already in the engine
    already_imported: bool


def import_bundle(engine: Engine, path: Path, runs_dir: Path, say: Say) -> ImportResult:
    import zstandard

    runs_dir.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".import-", dir=runs_dir))
    loaded_new: str | None = None
    try:
        try:
            with (
                _open_stream(path) as stream,
                tarfile.open(
                    fileobj=io.BufferedReader(_Prefetch(stream), COPY_CHUNK),
                    mode="r|",
                    bufsize=COPY_CHUNK,
                ) as tar,
            ):
                header = _read_header(tar, path)
                image_id = str(header.image["id"])
                existed = engine.image_attrs(image_id) is not None
                seen: set[str] = set()
                loaded = _stage_members(engine, tar, header, seen, staging, existed, say)
                missing = missing_members(header.members, seen)
                if missing:
                    raise BundleError(
                        f"{path} is truncated: {len(missing)} indexed members are missing (first: {missing[0]})"
                    )
        except (tarfile.TarError, zstandard.ZstdError, EOFError) as exc:
            raise _stream_error(exc, path) from exc
        if not existed:
            loaded_new = _loaded_id(loaded, image_id)
        record = _verify_run(staging, header)
        _verify_image(engine, header, record)
        result = _register(engine, staging, runs_dir, header, record, loaded=not existed)
        loaded_new = None  # registered: keep the image
        return result
    finally:
        shutil.rmtree(staging, ignore_errors=True)
        if loaded_new:
            engine.remove_image(loaded_new, force=True)


def _loaded_id(loaded: list[str], fallback: str) -> str:
    for item in loaded:
        if item.startswith("sha256:"):
            return item
    return fallback


def _stage_members(
    engine: Engine,
    tar: tarfile.TarFile,
    header: Header,
    seen: set[str],
    staging: Path,
    image_present: bool,
    say: Say,
) -> list[str]:
    """Check every member; stage run/ and code/ files, stream image/ ones into docker load."""
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
            members = _image_stream(tar, info, entry, index, seen, check)
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
                            engine.remove_image(attrs["Id"], force=True)
                    raise
            break
        if entry.kind == "dir":
            continue
        target = staging / entry.path
        target.parent.mkdir(parents=True, exist_ok=True)
        source = tar.extractfile(info)
        assert source is not None
        reader = HashingReader(source, info.size)
        with target.open("wb") as fh:
            written = 0
            for chunk in iter_chunks(reader):  # type: ignore[arg-type]
                fh.write(chunk)
                written += len(chunk)
        verify_member(entry, reader.hasher.hexdigest(), written)
        target.chmod(0o755 if entry.mode & 0o100 else 0o644)
    return loaded


class ImageCheck:
    """Proves, from the bundle's own bytes, which image its `docker save` members are: the
    config's sha256 is the image id, each layer tar's sha256 a diff id."""

    def __init__(self, hash_layers: bool) -> None:
        self.hash_layers = hash_layers
        self.manifest = b""
        self.digests: dict[str, str] = {}

    def wants(self, name: str) -> bool:
        return name.endswith(".json") or self.hash_layers

    def feed(self, name: str, data: bytes) -> None:
        if name == "manifest.json":
            self.manifest += data

    def done(self, name: str, sha256_hex: str) -> None:
        self.digests[name] = "sha256:" + sha256_hex

    def verify(self, image_id: str, diff_ids: list[str]) -> None:
        try:
            manifest = json.loads(self.manifest)
            config_name = str(manifest[0]["Config"])
            layers = [str(x) for x in manifest[0]["Layers"]]
        except (ValueError, KeyError, IndexError, TypeError) as exc:
            raise BundleError(f"the bundle's image has no readable manifest.json: {exc!r}") from exc
        carried = self.digests.get(config_name)
        if carried != image_id:
            raise BundleError(
                f"the bundle's image is {carried}, not the recorded {image_id}",
                hint="the bundle was altered or mis-assembled; ask for a fresh export",
            )
        if self.hash_layers and [self.digests.get(name) for name in layers] != diff_ids:
            raise BundleError(f"the bundle's image layers do not match image {image_id}'s diff ids")


def _image_stream(
    tar: tarfile.TarFile,
    first: tarfile.TarInfo,
    first_entry: IndexEntry,
    index: dict[str, IndexEntry],
    seen: set[str],
    check: ImageCheck,
) -> Iterator[bytes]:
    """Re-emit the image members as the `docker save` tar, each checked against the index."""
    info, entry = first, first_entry
    while True:
        if not entry.path.startswith("image/"):
            raise BundleError(
                f"member {entry.path!r} comes after the image members", member=entry.path
            )
        name = entry.path[len("image/") :]
        if entry.kind == "dir":
            yield member_header(name, 0, mode=0o755, directory=True)
        else:
            yield member_header(name, info.size, mode=entry.mode)
            source = tar.extractfile(info)
            assert source is not None
            reader = HashingReader(source, info.size)
            digest = hashlib.sha256() if check.wants(name) else None
            read = 0
            for chunk in iter_chunks(reader):  # type: ignore[arg-type]
                read += len(chunk)
                if digest is not None:
                    digest.update(chunk)
                    check.feed(name, chunk)
                yield chunk
            verify_member(entry, reader.hasher.hexdigest(), read)
            if digest is not None:
                check.done(name, digest.hexdigest())
            yield padding(info.size)
        following = tar.next()
        if following is None:
            break
        info, entry = following, check_against_index(following, index, seen)
    yield END_OF_ARCHIVE


def _verify_run(staging: Path, header: Header) -> dict[str, Any]:
    run = staging / "run"
    try:
        record = json.loads((run / keys.RUN_JSON).read_text())
    except (OSError, ValueError) as exc:
        raise BundleError(f"the bundle's run/run.json is missing or unreadable: {exc}") from exc
    if record.get("run_id") != header.run_id:
        raise BundleError(
            f"run/run.json is run {record.get('run_id')!r}, the header says {header.run_id!r}"
        )
    return dict(record)


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


def _register(
    engine: Engine,
    staging: Path,
    runs_dir: Path,
    header: Header,
    record: dict[str, Any],
    *,
    loaded: bool,
) -> ImportResult:
    image_id = str(record["image"]["id"])
    repo, tag, _ = parse_image_ref(str(record["image"]["tag"]))
    if (engine.image_attrs(f"{repo}:{tag}") or {}).get("Id") != image_id:
        engine.tag(image_id, repo, tag or "latest")
    patch = (staging / "run" / keys.RUN_PATCH).read_bytes() if record["code"].get("dirty") else b""
    code_dest = code_dir(runs_dir, _code_state(record, patch))
    if not code_dest.exists() and (staging / "code").is_dir():
        code_src = staging / "code"
        if patch:
            apply_patch(code_src, patch)
        code_dest.parent.mkdir(parents=True, exist_ok=True)
        code_src.rename(code_dest)
    final = runs_dir / header.experiment / header.run_id
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
    final.parent.mkdir(parents=True, exist_ok=True)
    for sub in keys.RUN_WRITABLE_DIRS:
        (staging / "run" / sub).mkdir(exist_ok=True)
    (staging / "run").rename(final)
    return ImportResult(final, image_id, loaded, already_imported=False)
