"""Every `reprise ...` command shown in the README names a real command and real options.

(What each command does is exercised by the integration tests; this keeps the README from
drifting away from the CLI.)
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import click
import pytest

from reprise.cli import cli

README = Path(__file__).resolve().parents[2] / "README.md"


def readme_commands() -> list[str]:
    commands = []
    in_block = False
    for line in README.read_text().splitlines():
        if line.startswith("```"):
            in_block = not in_block
            continue
        if in_block and line.startswith("reprise "):
            commands.append(re.split(r"\s{2,}#", line)[0].strip())
    return commands


def _options(command: click.Command) -> set[str]:
    names = {"--help", "-h"}
    for param in command.params:
        if isinstance(param, click.Option):
            names.update(param.opts)
            names.update(param.secondary_opts)
    return names


def test_readme_shows_commands() -> None:
    assert len(readme_commands()) >= 25
    text = README.read_text()
    assert "make demo" in text and "make test" in text


@pytest.mark.parametrize("line", readme_commands())
def test_readme_command_exists(line: str) -> None:
    tokens = shlex.split(line.replace("[", "").replace("]", ""))
    assert tokens[0] == "reprise"
    tokens = tokens[1:]
    if "--" in tokens:
        tokens = tokens[: tokens.index("--")]
    command: click.Command = cli
    known = _options(cli)
    while isinstance(command, click.Group) and tokens and not tokens[0].startswith("-"):
        sub = command.get_command(click.Context(command), tokens[0])
        assert sub is not None, f"{line}: no command {tokens[0]!r}"
        command = sub
        known |= _options(command)
        tokens = tokens[1:]
    assert not isinstance(command, click.Group), f"{line}: names a group, not a command"
    for token in tokens:
        if token.startswith("-") and token != "-":
            assert token.split("=")[0] in known, f"{line}: unknown option {token}"
