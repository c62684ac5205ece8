"""The `reprise` command line: it parses, calls one function of ``reprise.commands``, and
prints. Results go to stdout, progress to stderr.

Every heavy module (docker, jinja2, yaml) is imported inside the commands, so that
`reprise --help` is fast.
"""

from __future__ import annotations

from collections.abc import Sequence

import click

from reprise import __version__
from reprise.cli import (
    build,
    compare,
    completion,
    export,
    inspect,
    manage,
    project,
    reproduce,
    run,
    share,
)
from reprise.cli.common import Group


@click.group(
    cls=Group,
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
    epilog="""\b
Examples:
  reprise init                       add a [tool.reprise] section to pyproject.toml
  reprise build --dry-run            print the Dockerfile reprise would build
  reprise run optim.lr=0.01 --seed 7 train with an override and a seed
  reprise run -- python eval.py      run another command in the same environment
""",
)
@click.version_option(__version__, prog_name="reprise")
@click.option(
    "--project",
    "project_dir",
    type=click.Path(file_okay=False, path_type=str),
    default=None,
    help="Project directory (default: the nearest one with a pyproject.toml).",
)
@click.option(
    "--quiet", "-q", is_flag=True, help="No progress on stderr: only results, warnings, errors."
)
@click.pass_context
def cli(ctx: click.Context, project_dir: str | None, quiet: bool) -> None:
    """reprise: containerized training runs you can rerun bit-for-bit.

    Colour on a terminal only (NO_COLOR turns it off); results on stdout, progress on stderr.
    """
    from reprise.cli.style import set_quiet

    set_quiet(quiet)
    ctx.ensure_object(dict)
    ctx.obj["project_dir"] = project_dir


for command in (
    project.init,
    build.build,
    run.run,
    reproduce.reproduce,
    reproduce.resume,
    reproduce.diff,
    share.push,
    share.bundle,
    inspect.card,
    export.export,
    inspect.ls_,
    inspect.show,
    compare.compare,
    inspect.gc,
    run.attach,
    run.wait,
    run.fetch,
    manage.stop,
    manage.logs,
    manage.tag,
    manage.note,
    manage.rm,
    project.ci,
    completion.completion,
):
    cli.add_command(command)


def main(argv: Sequence[str] | None = None) -> None:
    """Console entry point."""
    cli.main(args=list(argv) if argv is not None else None, prog_name="reprise")
