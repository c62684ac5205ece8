"""What every command of the CLI shares: progress on stderr, results on stdout, one JSON
object for ``--json``, errors as one paragraph and their exit code, the project and its runs
directory."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from reprise.core.errors import EXIT_INTERNAL, EXIT_INTERRUPTED, Detached, RepriseError

if TYPE_CHECKING:
    from click.shell_completion import CompletionItem

    from reprise.edges.project import Project


def say(message: str) -> None:
    """A progress line on stderr; with --quiet only warnings are shown."""
    from reprise.cli.style import is_quiet, warning_text

    if message.startswith("warning"):
        click.echo(f"reprise: {warning_text(message)}", err=True)
    elif not is_quiet():
        click.echo(f"reprise: {message}", err=True)


def emit_json(data: Any, *, compact: bool = False) -> None:
    """One JSON value on stdout; ``compact`` for long lists (json's indenting encoder is slow)."""
    if compact:
        click.echo(json.dumps(data, sort_keys=True, separators=(",", ":")))
    else:
        click.echo(json.dumps(data, indent=2, sort_keys=True))


class Group(click.Group):
    """Turns reprise's own errors into one message on stderr and their exit code; anything
    else is a bug of reprise's: one paragraph and exit 70 (REPRISE_DEBUG=1 shows the
    traceback)."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except RepriseError as exc:
            from reprise.cli.style import error_text

            click.echo(error_text(exc.render()), err=True)
            ctx.exit(exc.exit_code)
        except Detached:
            ctx.exit(EXIT_INTERRUPTED)  # "detached" is said already; the run goes on
        except KeyboardInterrupt:
            click.echo("reprise: interrupted", err=True)
            ctx.exit(EXIT_INTERRUPTED)
        except (click.exceptions.Exit, click.ClickException, click.Abort):
            raise
        except Exception as exc:
            if os.environ.get("REPRISE_DEBUG") == "1":
                raise
            click.echo(
                f"error: internal error of reprise: {type(exc).__name__}: {exc}\n"
                "  hint: this is a bug; rerun with REPRISE_DEBUG=1 to see where, and report it",
                err=True,
            )
            ctx.exit(EXIT_INTERNAL)


class DashDashCommand(click.Command):
    """Keeps everything after the first ``--`` apart, as the command to run."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if "--" in args:
            at = args.index("--")
            ctx.meta["reprise.command"] = args[at + 1 :]
            args = args[:at]
        return super().parse_args(ctx, args)


def project_of(ctx: click.Context) -> Project:
    from reprise.edges.project import find_root, load_project

    root = ctx.obj.get("project_dir")
    return load_project(Path(root) if root else find_root(Path.cwd()))


def maybe_project(ctx: click.Context) -> Project | None:
    from reprise.core.errors import ProjectError

    try:
        return project_of(ctx)
    except ProjectError:
        if ctx.obj.get("project_dir"):
            raise
        return None


def runs_dir_of(ctx: click.Context, flag: str | None) -> Path:
    from reprise.core.errors import UsageError

    if flag:
        return Path(flag)
    project = maybe_project(ctx)
    if project is None:
        raise UsageError(
            "no project here to find runs in",
            hint="run inside the project, or pass --project DIR or --runs-dir DIR",
        )
    return project.settings.runs_dir


RUNS_DIR_OPTION = click.option(
    "--runs-dir",
    default=None,
    type=click.Path(file_okay=False),
    help="Where runs are (default: the project's runs-dir).",
)


def host_options(f: Any) -> Any:
    """--host / --context: the Docker engine the job runs on."""
    f = click.option(
        "--context",
        default=None,
        metavar="NAME",
        help="Run on the engine of this docker context (see `docker context ls`).",
    )(f)
    return click.option(
        "--host",
        "-H",
        default=None,
        metavar="URL",
        help="Run on this Docker engine: ssh://user@box, tcp://box:2376 or local "
        "(default: [tool.reprise] host, DOCKER_HOST, the current docker context).",
    )(f)


JSON_RECORD_OPTION = click.option(
    "--json", "as_json", is_flag=True, help="Print the finished run.json on stdout."
)


def report_run(record: dict[str, Any], run_dir: Path, as_json: bool) -> None:
    if as_json:
        emit_json(record)
        return
    click.echo(f"run      {record['run_id']}")
    click.echo(f"dir      {run_dir}")
    status = record["status"]
    if record.get("exit_code") not in (None, 0):
        status += f" (exit code {record['exit_code']})"
    from reprise.cli.style import word

    click.echo(f"status   {word(status)}")


def locate_run(ctx: click.Context, runs_dir: str | None, ref: str) -> Path:
    """The run directory RUN names: a path (no project needed), else an id, a unique prefix
    or suffix of one, a name, or latest~N under the runs directory. Without --runs-dir,
    latest~N counts the project's experiment only."""
    from reprise.edges.runstore import find_run

    if "/" in ref or ref in (".", ".."):
        return find_run(Path(runs_dir or "."), ref)
    if runs_dir:
        return find_run(Path(runs_dir), ref)
    project = maybe_project(ctx)
    if project is None:
        return find_run(runs_dir_of(ctx, None), ref)  # runs_dir_of says there is no project
    return find_run(project.settings.runs_dir, ref, experiment=project.settings.experiment)


def scoped_ref(ctx: click.Context, runs_dir: str | None, ref: str) -> str:
    """``latest~N`` made the path of the run it names (counting the project's experiment, as
    locate_run does), for commands that take refs of several kinds; any other ref as it is."""
    from reprise.core import names

    if names.LATEST.fullmatch(ref) and not Path(ref).exists():
        return str(locate_run(ctx, runs_dir, ref))
    return ref


def complete_runs(
    ctx: click.Context, param: click.Parameter, incomplete: str
) -> list[CompletionItem]:
    """Shell completion of a RUN argument: latest, the runs' names and ids (newest first),
    from --runs-dir or the project's runs directory; a path when the word has a '/'."""
    from click.shell_completion import CompletionItem

    from reprise.core.errors import RepriseError
    from reprise.edges.project import find_root, load_project
    from reprise.edges.runindex import all_summaries

    if "/" in incomplete:
        return [CompletionItem(incomplete, type="dir")]
    try:
        flag = ctx.params.get("runs_dir")
        if flag:
            runs_dir = Path(flag)
        else:
            root = ctx.find_root().params.get("project_dir")
            project = load_project(Path(root) if root else find_root(Path.cwd()))
            runs_dir = project.settings.runs_dir
        summaries = all_summaries(runs_dir)
    except (RepriseError, OSError):
        return []
    items = [CompletionItem("latest", help="the newest run")]
    items += [
        CompletionItem(s["name"], help=str(s.get("run_id"))) for s in summaries if s.get("name")
    ]
    items += [
        CompletionItem(s["run_id"], help=str(s.get("status"))) for s in summaries if s.get("run_id")
    ]
    return [item for item in items if str(item.value).startswith(incomplete)]


def complete_runs_or_files(
    ctx: click.Context, param: click.Parameter, incomplete: str
) -> list[CompletionItem]:
    """As complete_runs, and files (bundles) too."""
    from click.shell_completion import CompletionItem

    return [*complete_runs(ctx, param, incomplete), CompletionItem(incomplete, type="file")]
