"""`reprise gc` and the images saved beside the runs for a Slurm cluster's nodes."""

from __future__ import annotations

import os
from pathlib import Path

from reprise.commands.gc import ARCHIVE_KIND, unreferenced_archives


def test_archives_no_run_records_are_found_links_and_strangers_left(tmp_path: Path) -> None:
    folder = tmp_path / ".cache" / "images"
    folder.mkdir(parents=True)
    used, unused, linked = "a" * 64, "b" * 64, "c" * 64
    for hex_id in (used, unused):
        (folder / f"{hex_id}.tar").write_bytes(b"x" * 10)
    (tmp_path / "elsewhere.tar").write_bytes(b"y")
    os.symlink(tmp_path / "elsewhere.tar", folder / f"{linked}.tar")
    (folder / "notes.txt").write_text("not an archive")
    found = unreferenced_archives(tmp_path, {f"sha256:{used}"})
    assert [(f.id, f.size, f.kind) for f in found] == [(f"sha256:{unused}", 10, ARCHIVE_KIND)]
    assert found[0].tags == [str(folder / f"{unused}.tar")]
    assert unreferenced_archives(tmp_path / "none", set()) == []
