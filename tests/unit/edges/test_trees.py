"""Trees a job made: changed and removed without recursion and without following links."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from reprise.edges.trees import MAX_CHOWN_DEPTH, chown_tree, remove_tree


def _deep(root: Path, depth: int) -> Path:
    """A chain of ``depth`` folders below ``root`` made by descriptor (no path grows too long)."""
    root.mkdir()
    fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY)
    try:
        for _ in range(depth):
            os.mkdir("d", dir_fd=fd)
            child = os.open("d", os.O_RDONLY | os.O_DIRECTORY, dir_fd=fd)
            os.close(fd)
            fd = child
        with open(os.open("leaf.txt", os.O_WRONLY | os.O_CREAT, 0o644, dir_fd=fd), "w") as f:
            f.write("deep")
    finally:
        os.close(fd)
    return root


def test_a_tree_deeper_than_the_recursion_limit_is_removed(tmp_path: Path) -> None:
    root = _deep(tmp_path / "job", 3000)
    (root / "link").symlink_to(tmp_path / "keep")
    (tmp_path / "keep").mkdir()
    (tmp_path / "keep" / "precious").write_text("x")
    remove_tree(root)
    assert not root.exists()
    assert (tmp_path / "keep" / "precious").read_text() == "x"  # the link was not followed


def test_remove_tree_takes_a_link_itself_and_a_missing_path_quietly(tmp_path: Path) -> None:
    (tmp_path / "target").mkdir()
    (tmp_path / "target" / "f").write_text("x")
    (tmp_path / "link").symlink_to(tmp_path / "target")
    remove_tree(tmp_path / "link")
    remove_tree(tmp_path / "nothing")
    assert (tmp_path / "target" / "f").exists() and not (tmp_path / "link").is_symlink()


@pytest.mark.skipif(os.getuid() != 0, reason="changing owners needs root")
def test_chown_goes_as_deep_as_the_manifest_then_says_what_it_left(tmp_path: Path) -> None:
    root = _deep(tmp_path / "job", MAX_CHOWN_DEPTH + 50)
    outside = tmp_path / "outside"
    outside.write_text("x")
    os.chown(outside, 0, 0)
    (root / "link").symlink_to(outside)
    os.chown(root / "link", 1000, 1000, follow_symlinks=False)
    assert chown_tree(root, 4242, 4242) == 1
    assert (root / "d" / "d").stat().st_uid == 4242
    assert os.lstat(root / "link").st_uid == 4242
    assert outside.stat().st_uid == 0  # the link's target is never changed
    remove_tree(root)


@pytest.mark.skipif(os.getuid() != 0, reason="changing owners needs root")
def test_chown_of_a_deep_tree_that_fits_changes_every_entry(tmp_path: Path) -> None:
    root = _deep(tmp_path / "job", 100)
    assert chown_tree(root, 4242, 4242) == 0
    fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY)
    owners = set()
    try:
        for _ in range(100):
            child = os.open("d", os.O_RDONLY | os.O_DIRECTORY, dir_fd=fd)
            os.close(fd)
            fd = child
            owners.add(os.fstat(fd).st_uid)
        owners.add(os.stat("leaf.txt", dir_fd=fd).st_uid)
    finally:
        os.close(fd)
    assert owners == {4242}


def test_copy_job_file_copies_a_regular_file_under_a_new_name_and_refuses_a_link(
    tmp_path: Path,
) -> None:
    from reprise.edges.trees import copy_job_file

    src, dst = tmp_path / "src", tmp_path / "dst"
    src.mkdir()
    dst.mkdir()
    (src / "step_20.pt").write_bytes(b"state at 20")
    (src / "planted.pt").symlink_to("/etc/shadow")
    assert copy_job_file(src, "step_20.pt", dst, "last.pt", uid=None)
    assert (dst / "last.pt").read_bytes() == b"state at 20"
    assert not copy_job_file(src, "planted.pt", dst, "other.pt", uid=None)
    assert not (dst / "other.pt").exists()


def test_uvs_install_stamp_is_dropped_with_its_record_line(tmp_path: Path) -> None:
    from reprise.edges.stagecopy import drop_install_stamps

    dist = tmp_path / "lib/python3.11/site-packages/torch-2.13.0+cpu.dist-info"
    dist.mkdir(parents=True)
    (dist / "uv_cache.json").write_text('{"timestamp":{"secs_since_epoch":1796043158}}')
    (dist / "RECORD").write_text(
        "torch/__init__.py,sha256=abc,10\n"
        "torch-2.13.0+cpu.dist-info/uv_cache.json,sha256=def,47\n"
        "torch-2.13.0+cpu.dist-info/RECORD,,\n"
    )
    other = tmp_path / "lib/python3.11/site-packages/six-1.17.0.dist-info"
    other.mkdir()
    (other / "RECORD").write_text("six.py,sha256=x,1\n")
    assert drop_install_stamps(tmp_path) == ["torch-2.13.0+cpu.dist-info"]
    assert not (dist / "uv_cache.json").exists()
    assert (dist / "RECORD").read_text() == (
        "torch/__init__.py,sha256=abc,10\ntorch-2.13.0+cpu.dist-info/RECORD,,\n"
    )
    assert (other / "RECORD").read_text() == "six.py,sha256=x,1\n"
