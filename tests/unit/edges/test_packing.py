"""Packing the environment a rebuild copied out only in part: the folders the listing names
stand in for the ones not made, the layers come out byte-identical, and nothing the build
stage made is followed through a link."""

from __future__ import annotations

import io
import os
import tarfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from reprise.core.copyout import Entry
from reprise.core.errors import RecordError
from reprise.core.layers import Layer
from reprise.edges.assembly import Assembly, _records, _walk, pack_layers
from reprise.edges.stagecopy import copied_bytes, drop_install_stamps, scratch_parent
from reprise.edges.untar import unpack

SITE = "lib/python3.11/site-packages"
TORCH_RECORD = (
    "torch/__init__.py,sha256=a,1\ntorch/lib/libtorch.so,sha256=b,2\n"
    "torch-2.13.0.dist-info/RECORD,,\n"
)


def _venv(root: Path, *, with_torch: bool) -> None:
    """A small venv; without torch, only its RECORD (a rebuild copies that out first)."""
    site = root / "opt/venv" / SITE
    for folder in ("bin", f"{SITE}/six-1.17.0.dist-info", f"{SITE}/torch-2.13.0.dist-info"):
        (root / "opt/venv" / folder).mkdir(parents=True, exist_ok=True)
    (root / "opt/venv/bin/python").symlink_to("/usr/bin/python3")
    (site / "six.py").write_text("six\n")
    (site / "six-1.17.0.dist-info/RECORD").write_text("six.py,sha256=x,4\n")
    (site / "torch-2.13.0.dist-info/RECORD").write_text(TORCH_RECORD)
    if with_torch:
        (site / "torch/lib").mkdir(parents=True)
        (site / "torch/__pycache__").mkdir()
        (site / "torch/__init__.py").write_text("torch\n")
        (site / "torch/__pycache__/__init__.cpython-311.pyc").write_bytes(b"pyc")
        (site / "torch/lib/libtorch.so").write_bytes(b"\0" * 4096)
    (root / "etc").mkdir()
    (root / "etc/passwd").write_text("root:x:0:0:root:/root:/bin/sh\n")
    (root / "etc/group").write_text("root:x:0:\n")


def _folders(root: Path) -> list[str]:
    venv = root / "opt/venv"
    return sorted(p.relative_to(venv).as_posix() for p in venv.rglob("*") if p.is_dir())


def _pack(scratch: Path, out: Path, reuse: dict[str, Layer], folders: list[str]) -> list[Layer]:
    out.mkdir()
    plan = Assembly(
        tag="t:1",
        env={},
        labels={},
        heavy={"torch"},
        heavy_order=["package torch"],
        runtime={"/usr/lib/reprise/x.py": b"x"},
    )
    owner = {
        f"{SITE}/torch/__init__.py": "torch",
        f"{SITE}/torch/lib/libtorch.so": "torch",
        f"{SITE}/torch-2.13.0.dist-info/RECORD": "torch",
    }
    return pack_layers(scratch, plan, out, reuse, owner, lambda _: None, folders)


def test_a_partial_copy_with_the_listings_folders_packs_the_same_environment_layer(
    tmp_path: Path,
) -> None:
    whole, part = tmp_path / "whole", tmp_path / "part"
    _venv(whole, with_torch=True)
    _venv(part, with_torch=False)
    folders = _folders(whole)
    full = _pack(whole, tmp_path / "out1", {}, folders)
    torch = next(layer for layer in full if layer.name == "package torch")
    again = _pack(part, tmp_path / "out2", {"package torch": torch}, folders)
    assert [layer.diff_id for layer in again] == [layer.diff_id for layer in full]
    without = _pack(part, tmp_path / "out3", {"package torch": torch}, [])
    assert without[1].diff_id != full[1].diff_id, "the folders make the difference"


def test_the_walk_never_goes_through_a_link_the_listing_calls_a_folder(tmp_path: Path) -> None:
    root = tmp_path / "venv"
    (root / "lib").mkdir(parents=True)
    host = tmp_path / "host"
    host.mkdir()
    (host / "secret").write_text("host file")
    (root / "lib/site").symlink_to(host)  # the build stage's tar made a link where a folder was
    seen = list(_walk(root, ["lib", "lib/site", "lib/gone", "lib/gone/deeper"]))
    assert [(rel, is_folder) for rel, _, is_folder in seen] == [
        ("lib", True),
        ("lib/site", False),  # the link itself, never what it points to
        ("lib/gone", True),
        ("lib/gone/deeper", True),
    ]


def test_records_and_install_stamps_behind_a_link_are_left_alone(tmp_path: Path) -> None:
    venv = tmp_path / "venv"
    (venv / SITE).mkdir(parents=True)
    host = tmp_path / "host"
    host.mkdir()
    (host / "uv_cache.json").write_text("host's")
    (host / "RECORD").write_text("x/uv_cache.json,,\nhost line\n")
    (venv / SITE / "evil-1.0.dist-info").symlink_to(host)
    assert drop_install_stamps(venv) == []
    assert (host / "uv_cache.json").read_text() == "host's"
    assert (host / "RECORD").read_text() == "x/uv_cache.json,,\nhost line\n"
    assert _records(venv) == {}


def test_small_copies_are_packed_in_memory_unless_tmpdir_says_where(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("TMPDIR", raising=False)
    listing = [Entry("a.py", "f", 10 << 20), Entry("torch/lib.so", "f", 700 << 20)]
    size = copied_bytes(listing, {"torch/lib.so": "torch"}, {"torch"})
    assert size == 10 << 20
    assert scratch_parent(copied_bytes(listing, {}, set())) is None, "too big for memory"
    assert scratch_parent(None) is None
    if os.access("/dev/shm", os.W_OK):
        assert scratch_parent(size) == "/dev/shm"
    monkeypatch.setenv("TMPDIR", "/var/tmp")
    assert scratch_parent(size) is None


def _tar(members: list[tuple[str, bytes | str | None]]) -> Iterator[bytes]:
    """A tar of (name, bytes: a file | str: a link to it | None: a folder)."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, what in members:
            info = tarfile.TarInfo(name)
            if what is None:
                info.type = tarfile.DIRTYPE
                tar.addfile(info)
            elif isinstance(what, str):
                info.type, info.linkname = tarfile.SYMTYPE, what
                tar.addfile(info)
            else:
                info.size = len(what)
                tar.addfile(info, io.BytesIO(what))
    yield buf.getvalue()


def test_unpacking_many_folders_keeps_every_file_where_it_belongs(tmp_path: Path) -> None:
    """More folders than descriptors kept at once, revisited out of order."""
    members: list[tuple[str, bytes | str | None]] = []
    for i in range(100):
        members.append((f"d{i % 7}/sub{i}/deep/f{i}.py", f"{i}".encode()))
    for i in range(100):
        members.append((f"d{i % 7}/sub{i}/again{i}.py", b"again"))
    found = unpack(_tar(members), tmp_path / "out", strip="")
    assert found.files == 200
    for i in range(100):
        assert (tmp_path / f"out/d{i % 7}/sub{i}/deep/f{i}.py").read_text() == f"{i}"


def test_a_link_the_archive_planted_is_never_written_through(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    members: list[tuple[str, bytes | str | None]] = [
        ("a", None),
        ("a/ok.py", b"ok"),
        ("b", str(outside)),
        ("b/evil.py", b"evil"),
    ]
    with pytest.raises((OSError, RecordError)):
        unpack(_tar(members), tmp_path / "out", strip="")
    assert not list(outside.iterdir())
    assert (tmp_path / "out/b").is_symlink()


def test_reprises_own_tool_containers_never_run_the_images_entrypoint() -> None:
    """A CUDA base's entrypoint prints a banner on stdout: a listing read through it would
    not parse. A run keeps the image's entrypoint."""
    from reprise.edges.container_config import NO_ENTRYPOINT, ContainerSpec, create_config

    tool = ContainerSpec("img", ["find"], {}, [], "/", "", {}, entrypoint=NO_ENTRYPOINT)
    assert create_config(tool)["Entrypoint"] == [""]
    run = ContainerSpec("img", ["python", "train.py"], {}, [], "/", "", {})
    assert "Entrypoint" not in create_config(run)


def test_an_archive_past_its_byte_budget_or_not_an_archive_is_refused(tmp_path: Path) -> None:
    members: list[tuple[str, bytes | str | None]] = [("a.bin", b"x" * 1000), ("b.bin", b"y" * 1000)]
    with pytest.raises(RecordError, match="over 1500 bytes"):
        unpack(_tar(members), tmp_path / "out", strip="", limit=1500)
    with pytest.raises(RecordError, match="not a valid tar"):
        unpack(iter([b"\x01" * 1024]), tmp_path / "bad", strip="")


def test_a_deep_archive_holds_few_descriptors_and_no_recursion(tmp_path: Path) -> None:
    import resource

    deep = "/".join(["a"] * 300)  # past 256 descriptors; pytest's rmtree (recursive) copes
    members: list[tuple[str, bytes | str | None]] = [(f"{deep}/f.py", b"deep")]
    members += [(f"{'/'.join(['b'] * i)}/g{i}.py", b"x") for i in range(1, 200)]
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (256, hard))
    try:
        found = unpack(_tar(members), tmp_path / "out", strip="")
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    assert found.files == 200


def test_the_walk_goes_as_deep_as_the_listing_without_recursion(tmp_path: Path) -> None:
    folders = ["/".join(["d"] * i) for i in range(1, 1500)]  # past Python's recursion limit
    seen = list(_walk(tmp_path, folders))
    assert len(seen) == 1499 and seen[-1][0] == folders[-1]
    too_deep = ["/".join(["d"] * i) for i in range(1, 3000)]  # past what a path can name
    with pytest.raises(RecordError, match="nests deeper"):
        list(_walk(tmp_path, too_deep))


def test_a_hard_link_in_an_archive_arrives_as_a_copy_of_what_it_names(tmp_path: Path) -> None:
    """Docker's archive sends a file's second name as a hard link: dropped, the output would
    be missing from the manifest and never compared."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        data = b"weights" * 100
        info = tarfile.TarInfo("outputs/model.pt")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
        for name, target in (("outputs/best.pt", "outputs/model.pt"), ("outputs/x", "/etc/passwd")):
            link = tarfile.TarInfo(name)
            link.type, link.linkname = tarfile.LNKTYPE, target
            tar.addfile(link)
    found = unpack(iter([buf.getvalue()]), tmp_path / "out", strip="outputs", limit=1 << 20)
    assert (tmp_path / "out/best.pt").read_bytes() == data
    assert os.stat(tmp_path / "out/best.pt").st_ino != os.stat(tmp_path / "out/model.pt").st_ino
    assert found.skipped == ["x (hard link)"] and not (tmp_path / "out/x").exists()
    with pytest.raises(RecordError, match="over 1000 bytes"):
        unpack(iter([buf.getvalue()]), tmp_path / "again", strip="outputs", limit=1000)
