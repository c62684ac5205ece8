"""Emphasis on a terminal, nothing when piped: colour for statuses, verdicts and errors
(none when the stream is not a TTY, NO_COLOR is set or TERM is dumb), ``--quiet``, and
rich's spinner and byte progress on stderr while a long step runs. Results stay on stdout,
plain; everything drawn here goes to stderr."""

from __future__ import annotations

import contextlib
import os
import sys
import time
from collections.abc import Callable, Iterator
from typing import IO, Any

import click

from reprise.core.display import human_bytes, printable

STATUS_COLOURS = {
    "succeeded": "green",
    "failed": "red",
    "running": "cyan",
    "interrupted": "yellow",
    "lost": "magenta",
    "identical": "green",
    "diverged": "red",
    "error": "red",
    "nothing": "yellow",
    "inconclusive": "yellow",
}
_state = {"quiet": False}


def colour_on(stream: IO[Any]) -> bool:
    """Whether to colour what goes to ``stream``."""
    if os.environ.get("NO_COLOR") or os.environ.get("TERM") == "dumb":
        return False
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


def set_quiet(quiet: bool) -> None:
    _state["quiet"] = quiet


def is_quiet() -> bool:
    return _state["quiet"]


def word(text: str, *, err: bool = False, meaning: str | None = None) -> str:
    """A status or verdict (or ``text`` meaning one), coloured by what it means when its
    stream is a terminal."""
    colour = STATUS_COLOURS.get(meaning or text.split(" ", 1)[0])
    if colour is None or not colour_on(sys.stderr if err else sys.stdout):
        return text
    return click.style(text, fg=colour, bold=True if colour == "red" else None)


def error_text(text: str) -> str:
    """An error paragraph for stderr: its first word in bold red on a terminal."""
    if not colour_on(sys.stderr):
        return text
    head, sep, rest = text.partition(":")
    return click.style(head, fg="red", bold=True) + sep + rest


def warning_text(text: str) -> str:
    if not colour_on(sys.stderr):
        return text
    return text.replace("warning:", click.style("warning:", fg="yellow", bold=True), 1)


@contextlib.contextmanager
def spinner(step: str, say: Callable[[str], None]) -> Iterator[Callable[[str], None]]:
    """A spinner on stderr naming the step while the block runs (on a terminal, unless
    quiet); yields a ``say`` that updates the step (and prints it when there is no spinner)."""
    if is_quiet() or not colour_on(sys.stderr):
        yield say
        return
    from rich.console import Console
    from rich.markup import escape

    console = Console(file=sys.stderr, highlight=False)
    with console.status(escape(printable(step)), spinner="dots") as status:

        def update(message: str) -> None:
            if message.startswith("warning"):
                console.print(warning_text(message), markup=False, highlight=False)
            else:
                status.update(escape(printable(message)))

        yield update


class ByteMeter:
    """A :class:`reprise.core.progress.Meter`: bytes done of the total, the rate and the
    time left as a rich bar on stderr on a terminal (unless quiet); a line at the end says
    how much went through, how fast."""

    def __init__(self, label: str, say: Callable[[str], None]) -> None:
        self.label, self.say = label, say
        self.done = 0
        self.started = time.monotonic()
        self._progress: Any = None
        self._task: Any = None

    def start(self, total: int | None) -> None:
        self.started = time.monotonic()
        if is_quiet() or not colour_on(sys.stderr) or self._progress is not None:
            return
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            DownloadColumn,
            Progress,
            TextColumn,
            TimeRemainingColumn,
            TransferSpeedColumn,
        )

        self._progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            DownloadColumn(binary_units=True),
            TransferSpeedColumn(),
            TimeRemainingColumn(),
            console=Console(file=sys.stderr),
            transient=True,
        )
        self._progress.start()
        self._task = self._progress.add_task(self.label, total=total)

    def __call__(self, count: int) -> None:
        self.done += count
        if self._progress is not None:
            self._progress.update(self._task, completed=self.done)

    def close(self) -> None:
        if self._progress is not None:
            self._progress.stop()
        seconds = max(time.monotonic() - self.started, 1e-6)
        if self.done:
            rate = human_bytes(int(self.done / seconds))
            self.say(f"{self.label}: {human_bytes(self.done)} in {seconds:.1f} s ({rate}/s)")


@contextlib.contextmanager
def byte_meter(label: str, say: Callable[[str], None]) -> Iterator[ByteMeter]:
    meter = ByteMeter(label, say)
    try:
        yield meter
    finally:
        meter.close()
