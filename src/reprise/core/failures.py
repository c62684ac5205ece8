"""Why a job failed, in words: its last error line, and a hint for the causes reprise knows.

Pure: :func:`explain` takes the tail of the job's log, its exit code and the reason reprise
already has (if any). The known causes are the one table :data:`CAUSES`, matched on the log
tail; when several match, the one whose match comes last in the log wins. Running out of
memory (exit code 137 with the engine's OOM flag) is told elsewhere and is not here.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

MAX_ERROR_LINE = 500

_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
_TRACEBACK = "Traceback (most recent call last):"
# The line a Python exception ends on: `pkg.mod.SomeError: message`, or a bare `KeyError`.
_EXCEPTION = re.compile(
    r"^(?:[A-Za-z_]\w*\.)*[A-Za-z_]\w*(?:Error|Exception|Exit|Interrupt|Failure|Fault)\b(?::.*)?$"
)


@dataclass(frozen=True)
class Failure:
    """What reprise says of a failed run: never without a reason."""

    reason: str
    last_error: str | None
    hint: str | None


@dataclass(frozen=True)
class Cause:
    """A known cause of failure: a pattern on the log tail and the hint it earns."""

    name: str
    pattern: re.Pattern[str]
    hint: Callable[[re.Match[str], str], str]  # (the last match, the whole cleaned tail)


def _read_only(match: re.Match[str], _log: str) -> str:
    path = match.group("path")
    where = f"the job wrote to {path}, but " if path else ""
    return (
        f"{where}the code directory is read-only: write to $REPRISE_OUTPUTS, or to a relative "
        "path (the working directory is writable and lands in the run's work/ folder)"
    )


_HOST = re.compile(r"host='([^']+)'|https?://([^/\s'\"]+)")


def _network(_match: re.Match[str], log: str) -> str:
    hosts = [a or b for a, b in _HOST.findall(log)]
    tried = f" (it tried to reach {hosts[-1]})" if hosts else ""
    return (
        f"runs have no network{tried}: download data in a prepare step, which runs with network "
        "before the run and is mounted read-only under /workspace/data/: "
        '[tool.reprise.prepare] command = "python download.py"'
    )


# Import names whose package on PyPI is named otherwise.
_DISTRIBUTIONS = {
    "PIL": "pillow",
    "attr": "attrs",
    "bs4": "beautifulsoup4",
    "cv2": "opencv-python",
    "dateutil": "python-dateutil",
    "dotenv": "python-dotenv",
    "sklearn": "scikit-learn",
    "skimage": "scikit-image",
    "yaml": "pyyaml",
}


def _module(match: re.Match[str], _log: str) -> str:
    module = match.group("module")
    dist = _DISTRIBUTIONS.get(module.split(".")[0], module.split(".")[0])
    return (
        f"the image has no module '{module}': add the package that provides it ({dist}) to "
        f"pyproject.toml and run `uv lock` (`uv add {dist}` does both), then commit both; if it "
        "is in a dependency group, add the group to [tool.reprise] groups"
    )


def _script(match: re.Match[str], _log: str) -> str:
    return (
        f"{match.group('file')} is not in the code reprise ran: check the path in "
        "[tool.reprise] command, and that the file is committed (and not git-ignored)"
    )


def executable_hint(command: str | None) -> str:
    name = f"`{command}`" if command else "the command"
    return (
        f"{name} is not in the image: a [project.scripts] entry must belong to a package uv "
        "installs (one with a [build-system]), or run the module with `python -m ...`"
    )


def _executable(match: re.Match[str], _log: str) -> str:
    return executable_hint(next((g for g in match.groups() if g), None))


def _nondeterministic(match: re.Match[str], _log: str) -> str:
    return (
        f"{match.group('op')} has no deterministic implementation, and reprise runs torch with "
        'determinism = "strict": set determinism = "warn" in [tool.reprise] (or '
        "--determinism warn) to run it and record that it was used, or replace the operation"
    )


CAUSES: tuple[Cause, ...] = (
    Cause(
        "read-only",
        re.compile(r"Read-only file system(?:: '(?P<path>[^']*)')?|\bEROFS\b"),
        _read_only,
    ),
    Cause(
        "no-network",
        re.compile(
            r"Temporary failure in name resolution|Name or service not known"
            r"|Network is unreachable|getaddrinfo failed|nodename nor servname provided"
            r"|Could not resolve host|NameResolutionError|Failed to establish a new connection"
            r"|Max retries exceeded with url|urllib\.error\.URLError"
            r"|requests\.exceptions\.ConnectionError|httpx\.ConnectError"
            r"|We couldn't connect to '"
        ),
        _network,
    ),
    Cause("missing-module", re.compile(r"No module named '?(?P<module>[\w.]+)'?"), _module),
    Cause(
        "missing-script",
        re.compile(r"can't open file '(?P<file>[^']+)': \[Errno 2\] No such file or directory"),
        _script,
    ),
    Cause(
        "missing-executable",
        re.compile(
            r'exec: "([^"]+)": executable file not found'
            r'|exec: "([^"]+)": stat [^\n]*no such file or directory'
            r"|exec (\S+): no such file or directory"
            r"|^\S*sh: (?:\d+: )?(?:exec: )?([^\s:]+): (?:command )?not found$"
            r"|^\S*sh: command not found: (\S+)$"
            r"|^([^\s:]+): command not found$",
            re.MULTILINE,
        ),
        _executable,
    ),
    Cause(
        "nondeterministic-op",
        re.compile(r"(?P<op>[\w.]{1,200}) does not have a deterministic implementation"),
        _nondeterministic,
    ),
)


def _clean(log_tail: str) -> list[str]:
    """The log's lines as a terminal showed them: colours gone, a line redrawn with \\r
    (a progress bar) reduced to its last state."""
    text = _ANSI.sub("", log_tail).replace("\r\n", "\n")
    return [line.rsplit("\r", 1)[-1].rstrip() for line in text.split("\n")]


def _clip(line: str) -> str:
    line = line.strip()
    return line if len(line) <= MAX_ERROR_LINE else line[: MAX_ERROR_LINE - 1] + "…"


def last_error(log_tail: str) -> str | None:
    """The job's last error line: the exception line of the last Python traceback (read past
    a per-line prefix such as torch's `[rank0]: `), else the last line that looks like one,
    else the last non-empty line; None for an empty log."""
    lines = _clean(log_tail)
    starts = [i for i, line in enumerate(lines) if _TRACEBACK in line]
    if starts:
        head = lines[starts[-1]]
        prefix = head[: head.index(_TRACEBACK)]
        for line in lines[starts[-1] + 1 :]:
            if prefix.strip() and not line.startswith(prefix):
                continue
            body = line[len(prefix) :] if line.startswith(prefix) else line
            if body.strip() and not body[0].isspace():
                return _clip(body)
    for line in reversed(lines):
        if _EXCEPTION.match(line.strip()):
            return _clip(line)
    return next((_clip(line) for line in reversed(lines) if line.strip()), None)


def _hint(lines: list[str], exit_code: int | None) -> str | None:
    log = "\n".join(lines)
    best: tuple[int, Cause, re.Match[str]] | None = None
    for cause in CAUSES:
        matches = list(cause.pattern.finditer(log))
        if matches and (best is None or matches[-1].start() > best[0]):
            best = (matches[-1].start(), cause, matches[-1])
    if best is not None:
        return best[1].hint(best[2], log)
    if exit_code == 127:
        return executable_hint(None)
    return None


def explain(log_tail: str, exit_code: int | None, reason: str | None) -> Failure:
    """The reason, last error line and hint for a failed job.

    The reason is ``reason`` when given, else `the job exited with code N` (with `: <last
    error line>` when the log has one), else `no reason was given`: it is never empty.
    """
    error = last_error(log_tail)
    if reason and reason.strip():
        text = reason.strip()
    elif exit_code is not None:
        text = f"the job exited with code {exit_code}" + (f": {error}" if error else "")
    else:
        text = "no reason was given"
    return Failure(text, error, _hint(_clean(log_tail), exit_code))
