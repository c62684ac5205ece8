"""Emphasis only on a terminal (never when piped or with NO_COLOR), --quiet, and Ctrl-C in
attach saying one thing: detached."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import click
import pytest
from click.testing import CliRunner

from reprise.cli import cli, style
from reprise.core.errors import Detached

from ...recordcraft import valid_record, write_run


class Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_colour_only_on_a_terminal_without_no_color(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NO_COLOR", raising=False)
    monkeypatch.setenv("TERM", "xterm")
    monkeypatch.setattr("sys.stdout", Tty())
    monkeypatch.setattr("sys.stderr", Tty())
    assert style.word("failed (exit code 1)") == click.style(
        "failed (exit code 1)", fg="red", bold=True
    )
    assert style.word("identical") == click.style("identical", fg="green")
    assert style.word("spiral") == "spiral"  # not a status: as it is
    assert style.word("differ", meaning="diverged") == click.style("differ", fg="red", bold=True)
    assert style.error_text("error: no\n  hint: yes").startswith(
        click.style("error", fg="red", bold=True)
    )
    monkeypatch.setenv("NO_COLOR", "1")
    assert style.word("failed") == "failed" and style.error_text("error: x") == "error: x"
    monkeypatch.delenv("NO_COLOR")
    monkeypatch.setattr("sys.stdout", io.StringIO())  # piped
    assert style.word("failed") == "failed"


def test_piped_output_has_no_escape_and_quiet_drops_progress_not_warnings(tmp_path: Path) -> None:
    run = write_run(tmp_path, valid_record(status="failed", exit_code=1, reason="boom"))
    shown = CliRunner().invoke(cli, ["show", str(run)])
    assert "\x1b[" not in shown.output and "status     failed (exit code 1): boom" in shown.output
    said: list[str] = []

    @click.command()
    def talk() -> None:
        from reprise.cli.common import say

        say("building")
        say("warning: careful")
        said.append("done")

    cli.add_command(talk)
    try:
        loud = CliRunner().invoke(cli, ["talk"])
        quiet = CliRunner().invoke(cli, ["-q", "talk"])
    finally:
        cli.commands.pop("talk")
    assert "reprise: building" in loud.stderr and "reprise: warning: careful" in loud.stderr
    assert quiet.stderr == "reprise: warning: careful\n" and said == ["done", "done"]


def test_ctrl_c_in_attach_says_detached_and_not_interrupted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    run = write_run(tmp_path, valid_record(status="running"))

    def pick_up(run_dir: Path, *, say: Any, **_: Any) -> None:
        say("detached; the run goes on: reprise attach x")
        raise Detached

    monkeypatch.setattr("reprise.commands.lifecycle.pick_up", pick_up)
    result = CliRunner().invoke(cli, ["attach", str(run)])
    assert result.exit_code == 130
    assert "detached" in result.stderr and "interrupted" not in result.stderr


def test_the_spinner_shows_steps_on_a_terminal_and_passes_them_on_when_piped(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("NO_COLOR", raising=False)
    monkeypatch.setenv("TERM", "xterm")
    err = Tty()
    monkeypatch.setattr("sys.stderr", err)
    said: list[str] = []
    with style.spinner("comparing [bold]a[/bold]", said.append) as step:
        step("comparing the tensors of ckpt[1].pt")  # markup in a step is text, not style
        step("warning: something to keep")
    assert said == []  # on a terminal the spinner shows the steps
    assert "warning:" in err.getvalue() and "something to keep" in err.getvalue()
    monkeypatch.setattr("sys.stderr", io.StringIO())  # piped: every step said as a line
    with style.spinner("comparing", said.append) as step:
        step("comparing the tensors of ckpt.pt")
    assert said == ["comparing the tensors of ckpt.pt"]
