"""`reprise init`'s pure part: what the project runs, the section that says so, and how it goes
into pyproject.toml and .gitignore without changing a byte it does not own.

Everything works on bytes: a file keeps its encoding, its BOM and its line ending (the section
is written with the file's own), and what surrounds the section is copied as it was.
"""

from __future__ import annotations

import json
import re
import shlex
import tomllib
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any

from reprise.core.errors import ProjectError
from reprise.core.settings import DEFAULT_BASE_IMAGE

CONFIG_NAMES = ("config.yaml", "config.yml")
ENTRY_SCRIPTS = ("train.py", "main.py")
# .gitignore lines that already keep the default runs directory out of git.
_RUNS_IGNORED = {"runs", "runs/", "/runs", "/runs/", "runs/*", "/runs/*", "runs/**", "/runs/**"}
_IMPORTS_HYDRA = re.compile(r"^[ \t]*(?:import[ \t]+hydra\b|from[ \t]+hydra\b)", re.MULTILINE)
_HYDRA_MAIN = re.compile(r"^[ \t]*@hydra\.main\b", re.MULTILINE)
_REQUIREMENTS = re.compile(r"requirements[\w.-]*\.txt")
_HEADER = re.compile(rb"^[ \t]*\[\[?([^\[\]#\r\n]+)\]\]?[ \t]*(?:#.*)?$")


@dataclass(frozen=True)
class Detected:
    """What `reprise init` found the project runs, and where it found it."""

    command: str | None  # the command line; None when nothing was found
    source: str  # where the command came from, in words
    config: str | None  # the run config's file name at the root, when there is one
    hydra: str | None = None  # the Hydra app's file, when the command runs one
    notes: tuple[str, ...] = ()  # anything the user should know about the choice


def _toml_str(value: str) -> str:
    """A TOML basic string (JSON's escapes are TOML's), so no value can add a line or a key."""
    return json.dumps(value, ensure_ascii=False)


def _hydra_app(files: Collection[str], conf: Collection[str], sources: Mapping[str, str]) -> str:
    """The root .py file that is a Hydra app over conf/config.yaml, or '' when none is."""
    if not any(name in conf for name in CONFIG_NAMES):
        return ""
    apps = sorted(n for n in files if n in sources and _IMPORTS_HYDRA.search(sources[n]))
    decorated = [n for n in apps if _HYDRA_MAIN.search(sources[n])]
    return (decorated or apps or [""])[0]


def _packaged(pyproject: Mapping[str, Any]) -> bool:
    """Whether uv installs the project itself (and so its [project.scripts])."""
    package = ((pyproject.get("tool") or {}).get("uv") or {}).get("package")
    return bool(package) if package is not None else "build-system" in pyproject


def detect(
    pyproject: Mapping[str, Any],
    files: Collection[str],
    conf: Collection[str] = (),
    sources: Mapping[str, str] | None = None,
) -> Detected:
    """The command and config of a project, from its pyproject data, the names of the regular
    files at its root, those of its conf/ folder and the text of its root .py files.

    In order: the first [project.scripts] entry; train.py or main.py; a Hydra app (conf/ with
    a config.yaml and a root .py file that imports hydra, which reads its own config); else
    nothing. ``config`` is config.yaml (or .yml) when the root has one and the command is not
    a Hydra app.
    """
    sources = sources or {}
    root_config = next((name for name in CONFIG_NAMES if name in files), None)
    scripts = (pyproject.get("project") or {}).get("scripts") or {}
    if isinstance(scripts, dict) and scripts:
        name = str(next(iter(scripts)))
        notes: tuple[str, ...] = ()
        if not _packaged(pyproject):
            notes = (
                f"[project.scripts] {name} is only on PATH when uv installs the project: add a "
                "[build-system] (or set [tool.uv] package = true), or run it as `python -m ...`",
            )
        return Detected(
            shlex.quote(name), "the first entry of [project.scripts]", root_config, notes=notes
        )
    hydra = _hydra_app(files, conf, sources)
    for script in ENTRY_SCRIPTS:
        if script in files:
            if script == hydra:
                return Detected(
                    f"python {script}", f"{script}, a Hydra app (conf/)", None, hydra=script
                )
            return Detected(f"python {script}", f"{script} at the project root", root_config)
    if hydra:
        return Detected(
            f"python {shlex.quote(hydra)}",
            f"{hydra}, a Hydra app (it imports hydra; conf/ has its config)",
            None,
            hydra=hydra,
        )
    return Detected(None, "nothing", root_config)


def render_section(project_name: str, detected: Detected) -> str:
    """The [tool.reprise] section, with "\\n" line endings, commented for a first reader."""
    lines = [
        "[tool.reprise]",
        "# The training command. It starts in your code at the commit; what it writes relative",
        "# to its folder lands in the run's work/ (the code itself is never changed).",
    ]
    if detected.command is None:
        lines += [
            "# TODO: reprise found no [project.scripts] entry, train.py, main.py or Hydra app.",
            "# Write the command that trains (a script of [project.scripts], or `python` and a",
            '# file, e.g. "python src/train.py") and uncomment the line:',
            '# command = "python train.py"',
        ]
    else:
        lines.append(f"command = {_toml_str(detected.command)}")
    lines.append(
        "# The run config (YAML). Frozen into each run; its path is $REPRISE_CONFIG in the container."
    )
    if detected.hydra:
        lines.append(f"# None here: {detected.hydra} is a Hydra app and reads its own conf/.")
    elif detected.config:
        lines.append(f"config = {_toml_str(detected.config)}")
    else:
        lines.append('# config = "config.yaml"')
    lines += [
        "# Runs are grouped by experiment: <runs-dir>/<experiment>/<run id>/.",
        f"# experiment = {_toml_str(project_name)}",
        "# The base image. A tag is resolved to its digest at build time; pin a digest to be exact.",
        f"base-image = {_toml_str(DEFAULT_BASE_IMAGE)}",
        "# Registry for `reprise build --push` / `reprise push` (REPRISE_REGISTRY overrides).",
        '# registry = "registry.example.com/team"',
        '# GPUs for each run: "all", or a count.',
        '# gpus = "all"',
        "# CA bundle for image builds (build stage only): default, the host's trust store",
        "# (SSL_CERT_FILE, else the system bundle); false turns it off.",
        '# ca-bundle = "/etc/ssl/certs/ca-certificates.crt"',
        "# A folder of wheels that uv.lock refers to by absolute path (find-links); build time only.",
        '# wheelhouse = "/opt/wheels"',
        "# Where run directories go (relative to this file).",
        'runs-dir = "runs"',
        "# CPU threads for BLAS/OpenMP/torch; recorded, and restored on reproduce. Default: all cores.",
        "# threads = 1",
        "# Datasets, each mounted read-only at /workspace/data/<name> and content-hashed.",
        '# data = { train = "data/train" }',
        "# Dependency groups and extras of uv.lock to install (uv's default groups, e.g. dev, too).",
        '# groups = ["train"]',
        "# default-groups = false",
        '# extras = ["cuda"]',
        "# Outputs recorded but not compared by `reprise reproduce` (glob patterns).",
        '# volatile = ["logs/*.log"]',
        "# A step with network that makes a dataset before the hermetic run (mounted read-only).",
        '# prepare = { command = "python download.py", data = "downloads" }',
    ]
    return "\n".join(lines) + "\n"


def line_ending(data: bytes, default: bytes = b"\n") -> bytes:
    """The file's line ending: CRLF when most of its lines end so, LF when they do not, and
    ``default`` for a file of one line or none."""
    lf = data.count(b"\n")
    if lf == 0:
        return default
    return b"\r\n" if data.count(b"\r\n") * 2 > lf else b"\n"


def _with_eol(text: str, eol: bytes) -> bytes:
    return text.encode("utf-8").replace(b"\n", eol)


def _lines(data: bytes) -> list[tuple[int, bytes]]:
    """(offset, line without its ending) for each line."""
    out, at = [], 0
    for line in data.splitlines(keepends=True):
        out.append((at, line.rstrip(b"\r\n")))
        at += len(line)
    return out


def _table(line: bytes) -> str | None:
    match = _HEADER.match(line)
    if not match:
        return None
    key = match.group(1).decode("utf-8", "replace")
    return ".".join(part.strip().strip("\"'") for part in key.split("."))


def _blank(line: bytes) -> bool:
    return not line.strip()


def _comment(line: bytes) -> bool:
    return line.lstrip().startswith(b"#")


def reprise_spans(data: bytes) -> list[tuple[int, int]]:
    """The byte spans of [tool.reprise] and its sub-tables: from the header to the next table,
    less the blank lines at its end and a comment block that, after a blank line, sits on the
    next table's header (it describes that table)."""
    lines = _lines(data)
    heads = [i for i, (_, line) in enumerate(lines) if _table(line) is not None]
    spans = []
    for k, head in enumerate(heads):
        name = _table(lines[head][1]) or ""
        if name != "tool.reprise" and not name.startswith("tool.reprise."):
            continue
        end = heads[k + 1] if k + 1 < len(heads) else len(lines)
        j = end
        while j > head + 1 and _comment(lines[j - 1][1]):
            j -= 1
        if not (j < end and end < len(lines) and j > head + 1 and _blank(lines[j - 1][1])):
            j = end
        while j > head + 1 and _blank(lines[j - 1][1]):
            j -= 1
        stop = lines[j][0] if j < len(lines) else len(data)
        spans.append((lines[head][0], stop))
    return spans


def _strip_reprise(doc: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(doc)
    tool = dict(out.get("tool") or {})
    tool.pop("reprise", None)
    if tool:
        out["tool"] = tool
    else:
        out.pop("tool", None)
    return out


def _parse(data: bytes) -> dict[str, Any]:
    return tomllib.loads(data.decode("utf-8-sig"))


def with_section(data: bytes, section: str, *, replace: bool = False) -> bytes:
    """pyproject.toml's bytes with ``section`` (LF text) added at the end in the file's line
    ending, or, with ``replace``, put where the old [tool.reprise] was (its sub-tables go too).
    Every other byte is kept; the result is checked to parse to the same document but for
    [tool.reprise]."""
    eol = line_ending(data)
    body = _with_eol(section, eol)
    spans = reprise_spans(data) if replace else []
    if replace and not spans:
        raise ProjectError(
            "pyproject.toml sets tool.reprise without a [tool.reprise] table header, so init "
            "cannot replace it",
            path="pyproject.toml",
            hint="delete the tool.reprise keys by hand, then run `reprise init` again",
        )
    if spans:
        out, at = bytearray(), 0
        for n, (start, stop) in enumerate(spans):
            if n == 0 or data[at:start].strip():  # drop blank lines between removed tables
                out += data[at:start]
            if n == 0:
                out += body
            at = stop
        new = bytes(out + data[at:])
    else:
        new = data
        if new and not new.endswith((b"\n", b"\r")):
            new += eol
        if new.rstrip(b"\r\n") and not new.endswith(eol + eol):
            new += eol
        new += body
    try:
        before, after = _parse(data), _parse(new)
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ProjectError(
            f"pyproject.toml is not valid TOML: {exc}", path="pyproject.toml"
        ) from None
    expected = tomllib.loads(section)["tool"]["reprise"]
    if (
        _strip_reprise(before) != _strip_reprise(after)
        or (after.get("tool") or {}).get("reprise") != expected
    ):
        raise ProjectError(
            "init could not add [tool.reprise] without changing the rest of pyproject.toml",
            path="pyproject.toml",
            hint="add the section by hand:\n" + section,
        )
    return new


def gitignore_with_runs(data: bytes | None, default_eol: bytes = b"\n") -> bytes | None:
    """.gitignore's bytes with `runs/` added in its own line ending, or None when it already
    ignores runs/."""
    if data is None:
        return b"runs/" + default_eol
    if any(line.strip().decode("utf-8", "replace") in _RUNS_IGNORED for _, line in _lines(data)):
        return None
    eol = line_ending(data, default_eol)
    if data and not data.endswith((b"\n", b"\r")):
        data += eol
    return data + b"runs/" + eol


def requirements_files(files: Collection[str]) -> list[str]:
    """The requirements*.txt files among ``files``, requirements.txt first."""
    found = sorted(n for n in files if _REQUIREMENTS.fullmatch(n))
    return sorted(found, key=lambda n: n != "requirements.txt")


def migration_error(
    pyproject: Mapping[str, Any] | None, files: Collection[str], where: str
) -> ProjectError | None:
    """The error for a project reprise cannot read yet, with the commands that make it one;
    None when it can. ``pyproject`` is None when there is no pyproject.toml."""
    if pyproject is None:
        reqs = requirements_files(files)
        if not reqs:
            return ProjectError(
                f"no pyproject.toml in {where}",
                path=where,
                hint="make it a uv project first: uv init --bare && uv lock && reprise init",
            )
        others = f" (add {', '.join(reqs[1:])} the same way if the training needs it)"
        return ProjectError(
            f"{where} has {reqs[0]} but no pyproject.toml: reprise installs a project's uv.lock",
            path=where,
            hint=f"migrate to uv: uv init --bare && uv add -r {shlex.quote(reqs[0])} && reprise init"
            + (others if len(reqs) > 1 else ""),
        )
    if "project" in pyproject:
        return None
    if "poetry" in (pyproject.get("tool") or {}):
        return ProjectError(
            f"{where}/pyproject.toml is a Poetry project ([tool.poetry], no [project] table)",
            path=where,
            hint="migrate it to uv: uvx migrate-to-uv && uv lock && reprise init",
        )
    if "workspace" in ((pyproject.get("tool") or {}).get("uv") or {}):
        return None
    return ProjectError(
        f"{where}/pyproject.toml has no [project] table",
        path=where,
        hint="add [project] with a name, version, requires-python and dependencies, then: "
        "uv lock && reprise init",
    )


def next_steps(*, needs_lock: bool, cd: str | None = None, lock: str = "uv.lock") -> list[str]:
    """The commands to type after init: lock if need be, commit, look at the image, run.
    ``lock`` is where uv.lock goes, relative to the project (a workspace's is at its root)."""
    files = "pyproject.toml .gitignore" + (f" {shlex.quote(lock)}" if needs_lock else "")
    steps = [f"cd {shlex.quote(cd)}"] if cd else []
    if needs_lock:
        steps.append("uv lock")
    return [
        *steps,
        f'git add {files} && git commit -m "reprise settings"',
        "reprise build --dry-run",
        "reprise run",
    ]
