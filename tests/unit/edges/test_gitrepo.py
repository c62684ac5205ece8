from __future__ import annotations

from pathlib import Path

import pytest

from reprise.core.errors import DirtyTreeError, ProjectError
from reprise.edges.git import code_state, export_code, require_clean

from ...projects import commit_all, init_repo


def _repo(tmp_path: Path) -> Path:
    root = tmp_path / "repo"
    (root / "proj" / "src" / "pkg").mkdir(parents=True)
    (root / "proj" / "train.py").write_text("print(1)\n")
    (root / "proj" / "src" / "pkg" / "__init__.py").write_text("")
    (root / "other.txt").write_text("outside the project\n")
    (root / ".gitignore").write_text("runs/\n")
    init_repo(root)
    return root


def test_subdirectory_project_with_ignored_runs_is_clean(tmp_path: Path) -> None:
    root = _repo(tmp_path)
    (root / "proj" / "runs" / "exp").mkdir(parents=True)
    (root / "proj" / "runs" / "exp" / "x").write_text("run output")
    (root / "other.txt").write_text("changed outside the project\n")
    state = code_state(root / "proj", exclude=(root / "proj" / "runs",))
    assert state.subdir == "proj"
    assert not state.dirty and state.patch == b""
    require_clean(state, allow_dirty=False)


def test_patch_roundtrip_with_untracked_and_binary_files(tmp_path: Path) -> None:
    root = _repo(tmp_path)
    proj = root / "proj"
    (proj / "train.py").write_text("print(2)\n")
    (proj / "new.bin").write_bytes(bytes(range(256)))
    state = code_state(proj)
    assert state.dirty and state.patch_hash is not None
    with pytest.raises(DirtyTreeError, match=r"train\.py"):
        require_clean(state, allow_dirty=False)
    dest = tmp_path / "code"
    export_code(root, state.commit, state.patch, dest, subdir=state.subdir)
    assert (dest / "train.py").read_text() == "print(2)\n"
    assert (dest / "new.bin").read_bytes() == bytes(range(256))
    assert (dest / "src" / "pkg" / "__init__.py").exists()
    assert not (dest / "other.txt").exists()
    assert (dest / "train.py").stat().st_mode & 0o777 == 0o644
    # the user's own index is untouched by the patch computation
    commit_all(root)
    assert not code_state(proj).dirty


def test_export_of_unknown_commit_is_a_clear_error(tmp_path: Path) -> None:
    root = _repo(tmp_path)
    with pytest.raises(ProjectError, match="git archive"):
        export_code(root, "0" * 40, b"", tmp_path / "code")
    assert not (tmp_path / "code").exists()


def test_code_a_bundle_brought_never_stands_in_for_the_repositorys_own(tmp_path: Path) -> None:
    """An imported bundle's code sits where the code of its (claimed) commit goes; a run made
    here at that commit gets the repository's tree, never the bundle's."""
    from reprise.edges.git import made_here

    root = _repo(tmp_path)
    commit = code_state(root / "proj").commit
    dest = tmp_path / "cache" / commit
    dest.mkdir(parents=True)
    (dest / "train.py").write_text("import os; os.system('evil')\n")  # as an import left it
    assert not made_here(dest)
    export_code(root, commit, b"", dest, subdir="proj")
    assert (dest / "train.py").read_text() == "print(1)\n" and made_here(dest)
    (dest / "kept.txt").write_text("made here: kept")
    export_code(root, commit, b"", dest, subdir="proj")
    assert (dest / "kept.txt").exists()
    assert sorted(p.name for p in dest.parent.iterdir()) == [commit, f"{commit}.exported"]
