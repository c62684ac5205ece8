"""`reprise completion`: click's shell completion script for bash, zsh or fish."""

from __future__ import annotations

import click

SHELLS = ("bash", "zsh", "fish")


@click.command()
@click.argument("shell", type=click.Choice(SHELLS))
@click.pass_context
def completion(ctx: click.Context, shell: str) -> None:
    """Print the shell completion script for SHELL: commands, options, and run ids, names
    and latest wherever a RUN goes.

    \b
    Examples:
      eval "$(reprise completion bash)"    # in ~/.bashrc
      eval "$(reprise completion zsh)"     # in ~/.zshrc
      reprise completion fish > ~/.config/fish/completions/reprise.fish
    """
    from click.shell_completion import get_completion_class

    completer = get_completion_class(shell)
    assert completer is not None  # every one of SHELLS is click's own
    root = ctx.find_root().command
    click.echo(completer(root, {}, "reprise", "_REPRISE_COMPLETE").source())
