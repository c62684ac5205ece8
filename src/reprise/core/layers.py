"""The final image, assembled from named layers by rate of change. Pure.

The engine builds only the build stage (the Dockerfile); reprise then packs the environment
it made into layers itself, so that every layer is the same bytes for the same lock and base
on any machine and any day (sorted entries, mtime 0, owner 0:0, fixed modes, no build-time
metadata), and writes the image config itself (its id is the hash of that config). Layers,
after the base's:

- ``python``: a uv-managed interpreter (only when the base has none);
- ``package NAME``: one per heavy package of the lock (torch, nvidia-*, triton, or any wheel
  over HEAVY_BYTES, 4 MiB), so a change to a small dependency leaves them as they are;
- ``environment``: the rest of the virtual environment;
- ``reprise``: the runtime, the project's links, the job's user and folders.
"""

from __future__ import annotations

import hashlib
import json
import re
import tarfile
import tomllib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from reprise.core.workspace import normalize

HEAVY_NAMES = re.compile(
    r"torch|torchvision|torchaudio|triton|jax|jaxlib|tensorflow(-.*)?|nvidia-.*|xformers"
    r"|flash-attn|cupy(-.*)?|tensorrt(-.*)?|onnxruntime(-gpu)?"
)
HEAVY_BYTES = 4 << 20  # a wheel this large gets a layer of its own
LAYER_FORMAT = "2"  # bump when the packing of layers changes (cached layers are keyed by it)
ENVIRONMENT = "environment"
REPRISE = "reprise"
PYTHON = "python"
MAX_LAYERS = 100  # the base's and ours together stay well under the engine's 127


@dataclass(frozen=True)
class HeavyPackage:
    """A package installed in its own layer (and its own cached build step)."""

    name: str
    version: str
    index: str  # the registry it comes from: a URL, or a folder (a find-links wheelhouse)
    hashes: tuple[str, ...]  # of its wheels, as the lock pins them ("sha256:...")
    marker: str | None = None  # when only some platforms need it (from the lock's edges)

    @property
    def layer(self) -> str:
        return f"package {self.name}"


def heavy_packages(lock_text: bytes) -> list[HeavyPackage]:
    """The lock's heavy registry packages, by name: torch-like names, or a wheel over
    HEAVY_BYTES (as the lock records sizes). Derived from uv.lock alone."""
    data = tomllib.loads(lock_text.decode())
    markers = _incoming_markers(data.get("package") or [])
    out: dict[str, HeavyPackage] = {}
    for item in data.get("package") or []:
        if not isinstance(item, dict) or not isinstance(item.get("name"), str):
            continue
        source = item.get("source") or {}
        index = source.get("registry") if isinstance(source, dict) else None
        version = item.get("version")
        if not isinstance(index, str) or not isinstance(version, str):
            continue
        name = normalize(item["name"])
        _check(name, version, index)
        wheels = [w for w in item.get("wheels") or [] if isinstance(w, dict)]
        big = any(isinstance(w.get("size"), int) and w["size"] >= HEAVY_BYTES for w in wheels)
        if HEAVY_NAMES.fullmatch(name) or big:
            hashes = tuple(sorted(str(w["hash"]) for w in wheels if isinstance(w.get("hash"), str)))
            out[name] = HeavyPackage(name, version, index, hashes, markers.get(name))
    return [out[n] for n in sorted(out)][: MAX_LAYERS - 8]


_NAME = re.compile(r"[a-z0-9]([a-z0-9.-]*[a-z0-9])?")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def _check(name: str, version: str, index: str) -> None:
    """A lock may come from anywhere (a bundle's run): its names, versions and registries
    reach the Dockerfile and uv's command line only when they are plain."""
    from reprise.core.errors import LockError

    if not _NAME.fullmatch(name) or _CONTROL.search(version) or _CONTROL.search(index):
        raise LockError(
            f"uv.lock names package {name!r} (version {version!r}, registry {index!r}): not "
            "a plain name, version and registry"
        )


def _incoming_markers(packages: list[Any]) -> dict[str, str | None]:
    """Per package, the markers under which something depends on it: None when some edge has
    none (always needed), else the edges' markers joined with `or`."""
    seen: dict[str, set[str] | None] = {}
    for item in packages:
        if not isinstance(item, dict):
            continue
        edges = list(item.get("dependencies") or [])
        for group in (item.get("optional-dependencies") or {}, item.get("dev-dependencies") or {}):
            if isinstance(group, dict):
                for deps in group.values():
                    edges += list(deps or [])
        for edge in edges:
            if not isinstance(edge, dict) or not isinstance(edge.get("name"), str):
                continue
            name = normalize(edge["name"])
            marker = edge.get("marker")
            if not isinstance(marker, str) or not marker:
                seen[name] = None
            elif name not in seen:
                seen[name] = {marker}
            elif seen[name] is not None:
                seen[name].add(marker)  # type: ignore[union-attr]
    return {
        n: None if m is None else " or ".join(f"({x})" for x in sorted(m)) for n, m in seen.items()
    }


COMPILE_SCRIPT = '''"""reprise: compile to bytecode (checked by hash: SOURCE_DATE_EPOCH is set) the Python
files of every package but the heavy ones named, which were compiled when installed; on
every core (each file's bytecode depends on that file alone, so the order cannot matter)."""
import glob, os, py_compile, re, sys


def compile_one(full):
    try:
        py_compile.compile(full, doraise=True)
    except (py_compile.PyCompileError, OSError, ValueError):
        pass  # as compileall: a file that does not compile is left as source


if __name__ == "__main__":
    venv, heavy = sys.argv[1], set(sys.argv[2:])
    files = []
    for record in sorted(glob.glob(os.path.join(venv, "lib/python*/site-packages/*.dist-info/RECORD"))):
        dist = os.path.dirname(record)
        stem = os.path.basename(dist)[: -len(".dist-info")]
        if re.sub(r"[-_.]+", "-", stem.partition("-")[0]).lower() in heavy:
            continue
        with open(record, encoding="utf-8", errors="replace") as fh:
            for line in fh:
                path = line.rstrip("\\n").rsplit(",", 2)[0].strip('"')
                full = os.path.normpath(os.path.join(os.path.dirname(dist), path))
                if path.endswith(".py") and full.startswith(venv + os.sep) and os.path.isfile(full):
                    files.append(full)
    try:
        from concurrent.futures import ProcessPoolExecutor

        with ProcessPoolExecutor() as pool:
            list(pool.map(compile_one, files, chunksize=64))
    except Exception:  # no process pool here (no /dev/shm, no semaphores): one at a time
        for full in files:
            compile_one(full)
'''


def heavy_requirements(heavy: Sequence[HeavyPackage]) -> dict[str, str]:
    """One requirements file per registry (file name -> text) for `uv pip install --no-deps`
    in the build stage; its first line names the registry (an index URL or a wheel folder)."""
    by_index: dict[str, list[HeavyPackage]] = {}
    for package in heavy:
        by_index.setdefault(package.index, []).append(package)
    out = {}
    for number, index in enumerate(sorted(by_index)):
        lines = []
        for p in by_index[index]:
            hashes = "".join(f" \\\n    --hash={h}" for h in p.hashes)
            marker = f" ; {p.marker}" if p.marker else ""
            lines.append(f"{p.name}=={p.version}{marker}{hashes}")
        out[f"{number}.txt"] = "\n".join(lines) + "\n"
    return out


def index_args(heavy: Sequence[HeavyPackage]) -> list[list[str]]:
    """For each requirements file of heavy_requirements, in order: uv's registry options."""
    indexes = sorted({p.index for p in heavy})
    return [
        ["--index-url", i]
        if i.startswith(("http://", "https://"))
        else ["--no-index", "--find-links", i]
        for i in indexes
    ]


def owners(records: Mapping[str, str], site: str) -> dict[str, str]:
    """Which package each installed file belongs to: ``records`` maps a .dist-info folder
    (relative to the venv) to its RECORD text; paths in RECORD are relative to ``site``
    (site-packages, relative to the venv) and may climb out of it (``../../../bin/x``)."""
    import posixpath

    out: dict[str, str] = {}
    for dist_info, text in sorted(records.items()):
        name = normalize(dist_name(dist_info)[0])
        for line in text.splitlines():
            path = line.rsplit(",", 2)[0].strip('"') if "," in line else line
            if not path:
                continue
            full = posixpath.normpath(posixpath.join(site, path))
            if not full.startswith(".."):
                out[full] = name
    return out


def dist_name(dist_info: str) -> tuple[str, str]:
    """(name, version) of a ``<name>-<version>.dist-info`` folder."""
    import posixpath

    stem = posixpath.basename(dist_info).removesuffix(".dist-info")
    name, _, version = stem.partition("-")
    return name, version


def _pyc_source(path: str) -> str | None:
    """``pkg/mod.py`` for ``pkg/__pycache__/mod.cpython-311.pyc`` (bytecode uv compiled after
    installing: no RECORD lists it)."""
    import posixpath

    folder, name = posixpath.split(path)
    if posixpath.basename(folder) != "__pycache__" or not name.endswith(".pyc"):
        return None
    return posixpath.join(posixpath.dirname(folder), name.split(".", 1)[0] + ".py")


def package_of(path: str, owner: Mapping[str, str]) -> str | None:
    """The package a file of the venv belongs to: by its RECORD, else (bytecode) by its
    source's."""
    found = owner.get(path)
    if found is None and (source := _pyc_source(path)) is not None:
        found = owner.get(source)
    return found


def layer_of(path: str, owner: Mapping[str, str], heavy: set[str]) -> str:
    """The layer a file of the venv goes to (``path`` relative to the venv)."""
    package = package_of(path, owner)
    return f"package {package}" if package in heavy else ENVIRONMENT


def tar_header(
    name: str, *, kind: bytes = tarfile.REGTYPE, size: int = 0, mode: int = 0o644, link: str = ""
) -> bytes:
    """A deterministic header: owner 0:0 without names, mtime 0, PAX only where needed."""
    info = tarfile.TarInfo(name)
    info.type, info.size, info.mode, info.linkname = kind, size, mode, link
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    info.mtime = 0
    return info.tobuf(tarfile.PAX_FORMAT, "utf-8", "surrogateescape")


def passwd_lines(passwd: str, group: str, uid: int, gid: int) -> tuple[str, str]:
    """/etc/passwd and /etc/group with the job's user and group added when missing."""
    if not any(line.split(":")[2:3] == [str(gid)] for line in group.splitlines()):
        group = group + ("" if group.endswith("\n") or not group else "\n") + f"reprise:x:{gid}:\n"
    if not any(line.split(":")[2:3] == [str(uid)] for line in passwd.splitlines()):
        passwd = (
            passwd
            + ("" if passwd.endswith("\n") or not passwd else "\n")
            + f"reprise:x:{uid}:{gid}:reprise:/home/reprise:/bin/sh\n"
        )
    return passwd, group


@dataclass(frozen=True)
class Layer:
    """A packed layer: its name, diff id (sha256 of the uncompressed tar), size, and which
    packages (name -> "version sha256-of-RECORD") it holds."""

    name: str
    diff_id: str
    size: int
    packages: Mapping[str, str]

    def to_record(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "diff_id": self.diff_id,
            "size": self.size,
            "packages": dict(sorted(self.packages.items())),
        }


def image_config(
    base: Mapping[str, Any],
    base_diff_ids: Sequence[str],
    layers: Sequence[Layer],
    *,
    env: Mapping[str, str],
    labels: Mapping[str, str],
    user: str,
    workdir: str,
) -> bytes:
    """The image config (docker image spec v1.2) as canonical JSON: its sha256 is the image
    id. ``base`` is the base image's inspect data (Config, Architecture, Os, Created)."""
    config = dict(base.get("Config") or {})
    merged_env = dict(str(e).partition("=")[::2] for e in config.get("Env") or [])
    merged_env.update(env)
    out_config = {
        "Cmd": config.get("Cmd"),
        "Entrypoint": config.get("Entrypoint"),
        "Env": [f"{k}={v}" for k, v in merged_env.items()],
        "Labels": dict(sorted({**(config.get("Labels") or {}), **labels}.items())),
        "User": user,
        "WorkingDir": workdir,
    }
    document = {
        "architecture": base.get("Architecture") or "amd64",
        "os": base.get("Os") or "linux",
        "created": base.get("Created") or "1970-01-01T00:00:00Z",
        "config": out_config,
        "rootfs": {
            "type": "layers",
            "diff_ids": [*base_diff_ids, *(layer.diff_id for layer in layers)],
        },
        "history": [
            {
                "created": base.get("Created") or "1970-01-01T00:00:00Z",
                "created_by": f"reprise: {layer.name}",
            }
            for layer in layers
        ],
    }
    return json.dumps(document, sort_keys=True, separators=(",", ":")).encode()


def image_id(config: bytes) -> str:
    return "sha256:" + hashlib.sha256(config).hexdigest()


def archive_manifest(config_name: str, tag: str, layer_files: Iterable[str]) -> bytes:
    """docker-archive's manifest.json (base layers may be named without being in the
    archive: the engine loads only those it lacks)."""
    return json.dumps(
        [{"Config": config_name, "RepoTags": [tag], "Layers": list(layer_files)}], indent=None
    ).encode()


def compare_layers(
    recorded: Sequence[Mapping[str, Any]], rebuilt: Sequence[Mapping[str, Any]]
) -> dict[str, Any]:
    """Layer by layer: ``identical`` when every diff id matches; else the first layer that
    differs and the packages in it whose version or content (RECORD) differs."""
    for index, (a, b) in enumerate(zip(recorded, rebuilt, strict=False)):
        if a.get("diff_id") == b.get("diff_id"):
            continue
        pa, pb = dict(a.get("packages") or {}), dict(b.get("packages") or {})
        changed = sorted(n for n in pa.keys() | pb.keys() if pa.get(n) != pb.get(n))
        return {
            "identical": False,
            "layer": index,
            "name": a.get("name"),
            "rebuilt_name": b.get("name"),
            "packages": {n: {"recorded": pa.get(n), "rebuilt": pb.get(n)} for n in changed},
        }
    if len(recorded) != len(rebuilt):
        return {
            "identical": False,
            "layer": min(len(recorded), len(rebuilt)),
            "name": None,
            "packages": {},
            "layers": {"recorded": len(recorded), "rebuilt": len(rebuilt)},
        }
    return {"identical": True}


def environment_verdict(recorded: dict[str, Any], rebuilt: dict[str, Any]) -> dict[str, Any]:
    """Compare a run's recorded image with a rebuilt one (both image records)."""
    out: dict[str, Any] = {"recorded_id": recorded.get("id"), "rebuilt_id": rebuilt.get("id")}
    if recorded.get("id") == rebuilt.get("id"):
        out.update(
            verdict="identical",
            proven="the image id: every layer and the config, byte for byte",
        )
        return out
    layers_a, layers_b = recorded.get("layers"), rebuilt.get("layers")
    if not layers_a or not layers_b:
        out.update(
            verdict="unknown",
            proven="nothing: the run recorded no layers (it predates layer records), and the "
            "image ids differ",
        )
        return out
    found = compare_layers(layers_a, layers_b)
    if found["identical"]:
        out.update(
            verdict="identical",
            proven="every layer's diff id (the files, byte for byte); the image config differs "
            "(labels or environment of another reprise version)",
        )
        return out
    out.update(verdict="differs", layer=found)
    name = found.get("name") or f"layer {found['layer']}"
    packages = found.get("packages") or {}
    shown = ", ".join(
        f"{n} ({p['recorded'] or 'absent'} -> {p['rebuilt'] or 'absent'})"
        for n, p in sorted(packages.items())
    )
    out["proven"] = f"the first layer that differs is {name!r}" + (
        f": packages {shown}" if shown else ""
    )
    return out
