"""What a rebuild copies out of the build stage when heavy packages' layers are reused."""

from __future__ import annotations

import pytest

from reprise.core.copyout import Entry, parse_listing, plan_copy

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


def test_only_subtrees_without_much_that_is_skipped_are_streamed() -> None:
    paths = plan_copy(_listing(), lambda rel: rel in TORCH)
    assert paths == [
        "bin",  # 200 skipped bytes: streamed whole, filtered by the caller
        f"{SITE}/six-1.17.0.dist-info",
        f"{SITE}/six.py",
        f"{SITE}/torch/stray.txt",  # a file no RECORD names stays with the environment
        "lib64",
        "pyvenv.cfg",
    ]


def test_without_slack_no_skipped_file_is_streamed() -> None:
    paths = plan_copy(_listing(), lambda rel: rel in TORCH, slack=0)
    assert paths == [
        "bin/python",
        f"{SITE}/six-1.17.0.dist-info",
        f"{SITE}/six.py",
        f"{SITE}/torch/stray.txt",
        "lib64",
        "pyvenv.cfg",
    ]


def test_nothing_skipped_is_the_whole_root_and_a_bad_listing_is_refused() -> None:
    assert plan_copy(_listing(), lambda _: False) == [""]
    bad = ("f 1 /etc/passwd", "f 1 a/../b", "nosep", "xy 1 a", "f 1 a//b", "f -1 a", "f a")
    for record in bad:
        with pytest.raises(ValueError):
            parse_listing(record + "\0")
    assert parse_listing("f 3 name with\nnewline\0") == [Entry("name with\nnewline", "f", 3)]
