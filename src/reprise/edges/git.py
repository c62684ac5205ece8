"""The edge to git: which commit, is the tree dirty, the patch, and the code at a commit."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import tarfile
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from reprise.core.errors import DirtyTreeError, ProjectError


@dataclass(frozen=True)
class CodeState:
    root: Path
    commit: str
    branch: str | None
    remote: str | None
    dirty: bool
    patch: bytes  # tracked changes and untracked files, binary-safe; empty when clean
    subdir: str = ""  # the project's folder inside the repository ("" at its top)

    @property
    def patch_hash(self) -> str | None:
        return "sha256:" + hashlib.sha256(self.patch).hexdigest() if self.patch else None


def _git(root: Path, *args: str, env: dict[str, str] | None = None) -> bytes:
    try:
        done = subprocess.run(
            ["git", "-C", str(root), *args],
            capture_output=True,
            check=False,
            env=env,
        )
    except FileNotFoundError:
        raise ProjectError(
            "git is not installed", hint="install git (apt-get install git)"
        ) from None
    if done.returncode != 0:
        raise ProjectError(
            f"git {' '.join(args)} failed in {root}: {done.stderr.decode(errors='replace').strip()}"
        )
    return done.stdout


def repo_root(path: Path) -> Path:
    done = subprocess.run(
        ["git", "-C", str(path), "rev-parse", "--show-toplevel"], capture_output=True, check=False
    )
    if done.returncode != 0:
        raise ProjectError(
            f"{path} is not inside a git repository",
            path=str(path),
            hint="reprise runs the code at a commit: run `git init && git add -A && git commit -m init` first",
        )
    return Path(done.stdout.decode().strip())


def code_state(root: Path, *, exclude: tuple[Path, ...] = ()) -> CodeState:
    top = repo_root(root)
    # Commit and branch in one call; an unborn HEAD fails it.
    head = subprocess.run(
        ["git", "-C", str(top), "rev-parse", "HEAD", "--abbrev-ref", "HEAD"],
        capture_output=True,
        check=False,
    )
    lines = head.stdout.decode().split()
    if head.returncode != 0 or len(lines) != 2:
        raise ProjectError(
            f"the git repository at {top} has no commit yet",
            path=str(top),
            hint="commit your code first: git add -A && git commit -m init",
        )
    commit, branch = lines
    remote_out = subprocess.run(
        ["git", "-C", str(top), "config", "--get", "remote.origin.url"],
        capture_output=True,
        check=False,
    )
    remote = remote_out.stdout.decode().strip() if remote_out.returncode == 0 else None
    subdir = root.resolve().relative_to(top.resolve()).as_posix()
    subdir = "" if subdir == "." else subdir
    patch = working_tree_patch(top, subdir=subdir, exclude=exclude)
    return CodeState(
        root=top,
        commit=commit,
        branch=None if branch == "HEAD" else branch,
        remote=remote or None,
        dirty=bool(patch),
        patch=patch,
        subdir=subdir,
    )


def working_tree_patch(top: Path, *, subdir: str = "", exclude: tuple[Path, ...] = ()) -> bytes:
    """Tracked changes plus untracked (not ignored) files under ``subdir``, as one binary patch
    against HEAD, with paths relative to ``subdir``.

    Staged through a throw-away index, so the user's own index is left alone.
    """
    specs = [subdir or "."]
    for path in exclude:
        try:
            rel = path.resolve().relative_to(top.resolve())
        except ValueError:
            continue  # outside the repository: nothing to exclude
        ignored = subprocess.run(
            ["git", "-C", str(top), "check-ignore", "-q", rel.as_posix()], check=False
        )
        if ignored.returncode != 0:  # git refuses to name an ignored path, even to exclude it
            specs.append(f":(exclude){rel.as_posix()}")
    # The common case, a clean tree, in one git call.
    if not _git(top, "status", "--porcelain", "--untracked-files=all", "--", *specs).strip():
        return b""
    with tempfile.TemporaryDirectory(prefix="reprise-index-") as tmp:
        env = dict(os.environ)
        env["GIT_INDEX_FILE"] = str(Path(tmp) / "index")
        _git(top, "read-tree", "HEAD", env=env)
        _git(top, "add", "-A", "--", *specs, env=env)
        relative = [f"--relative={subdir}"] if subdir else []
        return _git(
            top,
            "diff",
            "--cached",
            "--binary",
            "--no-color",
            "--no-ext-diff",
            *relative,
            "HEAD",
            "--",
            subdir or ".",
            env=env,
        )


def ignored_paths(root: Path, paths: Sequence[str]) -> list[str]:
    """Those of ``paths`` (relative to ``root``) that git ignores; none outside a repository."""
    if not paths:
        return []
    done = subprocess.run(
        ["git", "-C", str(root), "check-ignore", "--", *paths], capture_output=True, check=False
    )
    if done.returncode not in (0, 1):
        return []
    return [line for line in done.stdout.decode("utf-8", "replace").splitlines() if line]


def require_clean(state: CodeState, *, allow_dirty: bool) -> None:
    if state.dirty and not allow_dirty:
        files = _changed_files(state.patch)
        shown = ", ".join(files[:5]) + (f" and {len(files) - 5} more" if len(files) > 5 else "")
        raise DirtyTreeError(
            f"the working tree has uncommitted changes ({shown})",
            path=str(state.root),
            hint="commit them, or pass --allow-dirty to run anyway (the patch is stored in the run)",
        )


def _changed_files(patch: bytes) -> list[str]:
    files = []
    for line in patch.decode(errors="replace").splitlines():
        if line.startswith("diff --git a/"):
            files.append(line.split(" b/", 1)[-1])
    return files


EXPORTED = ".exported"  # beside a code folder: made here, from git (a bundle's is not)


def made_here(dest: Path) -> bool:
    """Whether the code folder ``dest`` was written by export_code from a repository (not
    taken from a bundle, whose code is only what its author says the commit holds)."""
    return dest.with_name(dest.name + EXPORTED).is_file()


def export_code(repo: Path, commit: str, patch: bytes, dest: Path, *, subdir: str = "") -> None:
    """Write the tree at ``commit`` (its ``subdir``, plus ``patch``) into ``dest``, atomically.
    A folder already there that a bundle brought is replaced by the repository's own tree;
    kept only when ``repo`` cannot give that commit (the rerun of an imported run)."""
    if dest.exists() and made_here(dest):
        return
    try:
        _export(repo, commit, patch, dest, subdir)
    except ProjectError:
        if dest.is_dir() and not dest.is_symlink():
            return  # no repository with that commit here: the bundle's code it is
        raise


def _export(repo: Path, commit: str, patch: bytes, dest: Path, subdir: str) -> None:
    repo = repo_root(repo)  # git archive of a subtree must run from the repository's top
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", dir=dest.parent))
    try:
        with tempfile.TemporaryFile() as archive:
            done = subprocess.run(
                [
                    "git",
                    "-C",
                    str(repo),
                    "archive",
                    "--format=tar",
                    f"{commit}:{subdir}" if subdir else commit,
                ],
                stdout=archive,
                stderr=subprocess.PIPE,
                check=False,
            )
            if done.returncode != 0:
                raise ProjectError(
                    f"git archive {commit} failed: {done.stderr.decode(errors='replace').strip()}",
                    hint="the commit must exist in this repository (git fetch it first)",
                )
            archive.seek(0)
            with tarfile.open(fileobj=archive) as tar:
                tar.extractall(tmp, filter="data")
        if patch:
            apply_patch(tmp, patch)
        _readable(tmp)
        if dest.is_dir() and not dest.is_symlink() and not made_here(dest):
            aside = Path(tempfile.mkdtemp(prefix=f".{dest.name}.bundled-", dir=dest.parent))
            dest.rename(aside / "code")  # a bundle's: out of the way, then gone
            shutil.rmtree(aside, ignore_errors=True)
        try:
            tmp.rename(dest)
        except OSError:
            if not dest.is_dir():
                raise
            shutil.rmtree(tmp, ignore_errors=True)  # a concurrent run exported it first
        dest.with_name(dest.name + EXPORTED).touch()
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _readable(tree: Path) -> None:
    """Whoever the container runs as must read the code: a+rX throughout, nobody writes."""
    for dirpath, _, filenames in os.walk(tree):
        Path(dirpath).chmod(0o755)
        for name in filenames:
            path = Path(dirpath) / name
            if not path.is_symlink():
                path.chmod(0o755 if path.stat().st_mode & 0o100 else 0o644)


def apply_patch(tree: Path, patch: bytes) -> None:
    done = subprocess.run(
        ["git", "apply", "--binary", "--whitespace=nowarn", "-"],
        input=patch,
        cwd=tree,
        capture_output=True,
        check=False,
        # Never let git find an enclosing repository: the patch applies to this tree alone.
        env={**os.environ, "GIT_CEILING_DIRECTORIES": str(tree.parent)},
    )
    if done.returncode != 0:
        raise ProjectError(
            f"the stored patch does not apply: {done.stderr.decode(errors='replace').strip()}"
        )
