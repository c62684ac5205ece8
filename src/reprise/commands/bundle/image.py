"""The image members of a bundle: re-emitted as the `docker save` tar for `docker load`, each
checked against the index, with every tag the archive names removed, and proven to be the
recorded image (its config's sha256 is the image id; its layers' sha256s the diff ids)."""

from __future__ import annotations

import hashlib
import json
import tarfile
from collections.abc import Iterator

from reprise.core.bundleformat import (
    END_OF_ARCHIVE,
    HashingReader,
    IndexEntry,
    check_against_index,
    iter_chunks,
    member_header,
    padding,
    verify_member,
)
from reprise.core.errors import BundleError

# `docker save` members that name tags: rewritten (or dropped) so that `docker load` applies
# none of the archive's own tags.
TAG_MEMBERS_LIMIT = 1 << 20


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
        except (ValueError, KeyError, IndexError, TypeError, RecursionError) as exc:
            raise BundleError(f"the bundle's image has no readable manifest.json: {exc!r}") from exc
        carried = self.digests.get(config_name)
        if carried != image_id:
            raise BundleError(
                f"the bundle's image is {carried}, not the recorded {image_id}",
                hint="the bundle was altered or mis-assembled; ask for a fresh export",
            )
        if self.hash_layers and [self.digests.get(name) for name in layers] != diff_ids:
            raise BundleError(f"the bundle's image layers do not match image {image_id}'s diff ids")


def untagged(name: str, data: bytes) -> bytes | None:
    """A `docker save` member with every tag it names removed (None: leave the member out).

    manifest.json's RepoTags, index.json's image-name annotations and the legacy
    `repositories` file are what `docker load` would apply as tags."""
    if name == "repositories":
        return None
    try:
        value = json.loads(data)
    except (ValueError, RecursionError) as exc:
        raise BundleError(
            f"the bundle's image/{name} is not valid JSON", member=f"image/{name}"
        ) from exc
    if name == "manifest.json" and isinstance(value, list):
        for item in value:
            if isinstance(item, dict):
                item["RepoTags"] = None
    elif name == "index.json" and isinstance(value, dict):
        for item in value.get("manifests") or []:
            annotations = item.get("annotations") if isinstance(item, dict) else None
            if isinstance(annotations, dict):
                for key in ("io.containerd.image.name", "org.opencontainers.image.ref.name"):
                    annotations.pop(key, None)
    return json.dumps(value, separators=(",", ":")).encode()


def image_stream(
    tar: tarfile.TarFile,
    first: tarfile.TarInfo,
    first_entry: IndexEntry,
    index: dict[str, IndexEntry],
    seen: set[str],
    check: ImageCheck,
) -> Iterator[bytes]:
    """Re-emit the image members as the `docker save` tar, each checked against the index,
    with the members that name tags rewritten to name none."""
    info, entry = first, first_entry
    while True:
        if not entry.path.startswith("image/"):
            raise BundleError(
                f"member {entry.path!r} comes after the image members", member=entry.path
            )
        name = entry.path[len("image/") :]
        if entry.kind == "dir":
            yield member_header(name, 0, mode=0o755, directory=True)
        elif name in ("manifest.json", "index.json", "repositories"):
            if info.size > TAG_MEMBERS_LIMIT:
                raise BundleError(
                    f"image/{name} is {info.size} bytes: not a docker save member",
                    member=entry.path,
                )
            data = read_member(tar, info, entry)
            check.feed(name, data)
            check.done(name, hashlib.sha256(data).hexdigest())
            rewritten = untagged(name, data)
            if rewritten is not None:
                yield member_header(name, len(rewritten), mode=entry.mode)
                yield rewritten + padding(len(rewritten))
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


def read_member(tar: tarfile.TarFile, info: tarfile.TarInfo, entry: IndexEntry) -> bytes:
    source = tar.extractfile(info)
    assert source is not None
    reader = HashingReader(source, info.size)
    data = b"".join(iter_chunks(reader))  # type: ignore[arg-type]
    verify_member(entry, reader.hasher.hexdigest(), len(data))
    return data
