"""What a rebuild copies out of the build stage when heavy packages' layers are reused."""

from __future__ import annotations

import pytest

from reprise.core.copyout import Entry, entries_to_copy, names_list, parse_listing

SITE = "lib/python3.11/site-packages"


def _listing() -> list[Entry]:
    text = "".join(
        f"{kind} {size} {path}\0"
        for kind, size, path in [
            ("d", 4096, "bin"),
            ("f", 100, "bin/python"),
            ("f", 200, "bin/torchrun"),
            ("l", 7, "lib64"),
            ("d", 4096, "lib"),
            ("d", 4096, "lib/python3.11"),
            ("d", 4096, SITE),
            ("d", 4096, f"{SITE}/torch"),
            ("f", 5000, f"{SITE}/torch/__init__.py"),
            ("d", 4096, f"{SITE}/torch/lib"),
            ("f", 700 << 20, f"{SITE}/torch/lib/libtorch.so"),
            ("f", 10, f"{SITE}/torch/stray.txt"),
            ("d", 4096, f"{SITE}/torch/small"),
            ("f", 100, f"{SITE}/torch/small/mod.py"),
            ("d", 4096, f"{SITE}/six-1.17.0.dist-info"),
            ("f", 900, f"{SITE}/six-1.17.0.dist-info/RECORD"),
            ("f", 30000, f"{SITE}/six.py"),
            ("f", 80, "pyvenv.cfg"),
        ]
    )
    return parse_listing(text)


TORCH = {
    "bin/torchrun",
    f"{SITE}/torch/__init__.py",
    f"{SITE}/torch/lib/libtorch.so",
    f"{SITE}/torch/small/mod.py",  # a folder wholly skipped is not streamed, however small
}


def test_every_file_but_the_skipped_is_named_and_no_folder() -> None:
    """In the listing's order (find's: a folder before what it holds)."""
    assert entries_to_copy(_listing(), lambda rel: rel in TORCH) == [
        "bin/python",
        "lib64",  # a link is copied as a link
        f"{SITE}/torch/stray.txt",  # a file no RECORD names stays with the environment
        f"{SITE}/six-1.17.0.dist-info/RECORD",
        f"{SITE}/six.py",
        "pyvenv.cfg",
    ]


def test_names_are_nul_terminated_below_the_prefix_whatever_they_hold() -> None:
    assert names_list(["a b", "new\nline", ""], "opt/venv") == (
        b"opt/venv/a b\0opt/venv/new\nline\0opt/venv\0"
    )
    assert names_list(["caf\udcc3"], "v") == b"v/caf\xc3\0"  # undecodable bytes kept


def test_a_bad_listing_is_refused() -> None:
    bad = ("f 1 /etc/passwd", "f 1 a/../b", "nosep", "xy 1 a", "f 1 a//b", "f -1 a", "f a")
    for record in bad:
        with pytest.raises(ValueError):
            parse_listing(record + "\0")
    assert parse_listing("f 3 name with\nnewline\0") == [Entry("name with\nnewline", "f", 3)]
