"""Daily use through the CLI (CliRunner, no engine): ls that never cuts silently, quotes
commands and escapes what a record holds, on a terminal and piped; tag, note, show, rm,
stop, logs, gc's wording, completion."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from reprise.cli import cli
from reprise.edges.runstore import read_record

from ...fakes import FakeBackend
from ...recordcraft import valid_record, write_run

LONG = "a-long-tag-" * 3


def _invoke(
    *args: str, env: dict[str, str | None] | None = None, stdin: str | None = None
) -> Result:
    return CliRunner().invoke(cli, list(args), env=env, input=stdin, catch_exceptions=False)


@pytest.fixture()
def runs(tmp_path: Path) -> Path:
    write_run(
        tmp_path,
        valid_record(
            run_id="20261123-140000-000001-5f3a9c1e",
            command=["python", "train.py", "--msg", "two words\nand a newline", "x" * 80],
            name="baseline",
            tags=["paper", LONG],
            notes=[{"text": "first"}, {"text": "[bold]x[/bold] \x1b[31mred"}],
        ),
    )
    write_run(
        tmp_path,
        valid_record(
            run_id="20261124-140000-000001-0badcafe",
            reproduces="20261123-140000-000001-5f3a9c1e",
            reproduction={"verdict": "identical"},
        ),
    )
    write_run(
        tmp_path,
        valid_record(
            run_id="20261125-140000-000001-12345678",
            status="interrupted",
            resumes={"run_id": "20261123-140000-000001-5f3a9c1e"},
        ),
    )
    return tmp_path


def _ls(runs: Path, *args: str, env: dict[str, str | None] | None = None) -> list[str]:
    result = _invoke("ls", "--runs-dir", str(runs), *args, env=env)
    assert result.exit_code == 0, result.stderr
    return result.stdout.splitlines()


def test_ls_piped_is_plain_quoted_escaped_and_never_cut_silently(runs: Path) -> None:
    lines = _ls(runs)
    assert lines[0].split() == [
        "RUN", "NAME", "EXPERIMENT", "STATUS", "SEED", "VERDICT", "ORIGIN", "TAGS", "NOTE", "COMMAND"
    ]  # fmt: skip
    newest, rerun, original = lines[1:]
    assert newest.startswith("20261125-140000-000001-12345678") and "resumes 5f3a9c1e" in newest
    assert "rerun of 5f3a9c1e" in rerun and "identical" in rerun
    assert "baseline" in original
    # The command is whole (the last column), quoted as a shell would, its newline escaped.
    assert original.endswith("python train.py --msg 'two words\\nand a newline' " + "x" * 80)
    assert "\x1b" not in "".join(lines) and "\\x1b[31mred" in original
    # A cell that is cut ends with an ellipsis.
    assert "paper a-long-tag-a-long…" in original and LONG not in original
    assert "first" not in original  # ls shows the last note


def test_ls_leaves_out_columns_no_run_has(tmp_path: Path) -> None:
    write_run(tmp_path, valid_record())
    header = _ls(tmp_path)[0].split()
    assert header == ["RUN", "EXPERIMENT", "STATUS", "SEED", "VERDICT", "COMMAND"]


def test_ls_on_a_terminal_is_a_rich_table_in_colour_unless_no_color(
    runs: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("reprise.cli.tables.on_terminal", lambda: True)
    coloured = "\n".join(_ls(runs, env={"COLUMNS": "120", "NO_COLOR": None}))
    assert "\x1b[32msucceeded" in coloured and "\x1b[33minterrupted" in coloured
    plain = _ls(runs, env={"COLUMNS": "120", "NO_COLOR": "1"})
    text = "\n".join(plain)
    assert "\x1b[" not in text
    assert all(len(line) <= 120 for line in plain)
    # The run id is an address: never cut; what is cut ends with an ellipsis.
    assert "20261123-140000-000001-5f3a9c1e" in text and "…" in text
    # What the record holds is shown, not interpreted: no markup, no escape sequence.
    wide = "\n".join(_ls(runs, env={"COLUMNS": "400", "NO_COLOR": "1"}))
    assert "[bold]x[/bold] \\x1b[31mred" in wide
    assert "python train.py --msg 'two words\\nand a newline' " + "x" * 80 in wide


def test_ls_on_a_narrow_terminal_says_which_columns_it_left_out(
    runs: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("reprise.cli.tables.on_terminal", lambda: True)
    result = _invoke("ls", "--runs-dir", str(runs), env={"COLUMNS": "70", "NO_COLOR": "1"})
    assert all(len(line) <= 70 for line in result.stdout.splitlines())
    assert "20261123-140000-000001-5f3a9c1e" in result.stdout
    assert "NOTE" in result.stderr and "left out: the terminal is too narrow" in result.stderr


def test_ls_filters_by_tag(runs: Path) -> None:
    lines = _ls(runs, "--tag", "paper")
    assert len(lines) == 2 and "5f3a9c1e" in lines[1]
    assert json.loads(_invoke("ls", "--runs-dir", str(runs), "--json").stdout)[2]["tags"] == [
        "paper",
        LONG,
    ]


def test_tag_note_and_show(runs: Path) -> None:
    tagged = _invoke("tag", "0badcafe", "checked", "fig:3", "--runs-dir", str(runs))
    assert tagged.exit_code == 0 and tagged.stdout.strip().endswith("checked fig:3")
    untagged = _invoke("tag", "0badcafe", "-d", "checked", "--runs-dir", str(runs), "--json")
    assert json.loads(untagged.stdout)["tags"] == ["fig:3"]
    noted = _invoke("note", "latest~1", "seed", "looks", "fine", "--runs-dir", str(runs))
    assert noted.exit_code == 0 and noted.stdout.strip().endswith("seed looks fine")
    shown = _invoke("show", "0badcafe", "--runs-dir", str(runs)).stdout
    assert "tags       fig:3" in shown and "seed looks fine" in shown
    named = _invoke("show", "baseline", "--runs-dir", str(runs)).stdout
    assert "name       baseline" in named and "note       -  first" in named
    assert "[bold]x[/bold] \\x1b[31mred" in named and "\x1b" not in named
    assert "command    python train.py --msg 'two words\\nand a newline'" in named
    bad = _invoke("tag", "latest", "not a tag", "--runs-dir", str(runs))
    assert bad.exit_code == 2 and "is not a valid tag" in bad.stderr
    none = _invoke("tag", "latest", "--runs-dir", str(runs))
    assert none.exit_code == 2 and "no tag given" in none.stderr


def test_rm_asks_then_removes(runs: Path) -> None:
    run = runs / "exp" / "20261124-140000-000001-0badcafe"
    declined = _invoke("rm", "0badcafe", "--runs-dir", str(runs), stdin="n\n")
    assert declined.exit_code == 1 and "nothing removed" in declined.stderr
    assert str(run) in declined.stderr and run.is_dir()
    no_answer = _invoke("rm", "0badcafe", "--runs-dir", str(runs), stdin="")
    assert no_answer.exit_code == 1 and run.is_dir()
    accepted = _invoke("rm", "0badcafe", "--runs-dir", str(runs), stdin="y\n")
    assert accepted.exit_code == 0 and f"removed {run}" in accepted.stdout
    assert not run.exists()
    both = _invoke("rm", "baseline", "latest", "--yes", "--runs-dir", str(runs))
    assert both.exit_code == 0 and both.stdout.count("removed") == 2
    assert not list(runs.glob("exp/2026*"))


def test_rm_refuses_a_running_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    backend = FakeBackend()
    run = _running(tmp_path, backend, monkeypatch)
    result = _invoke("rm", run.name, "--yes", "--runs-dir", str(tmp_path))
    assert result.exit_code == 2 and "is running: not removed" in result.stderr
    assert "reprise stop" in result.stderr and run.is_dir()


def _running(tmp_path: Path, backend: FakeBackend, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A `running` record whose job runs in the fake backend."""
    from reprise.execution.backend import JobSpec

    run_id = "20261126-140000-000001-feedf00d"
    job = backend.create(
        JobSpec(
            image="x",
            command=("python",),
            environment={},
            run_dir=tmp_path,
            writable=(),
            config=tmp_path,
            code=tmp_path,
            user="1000",
            labels={"org.reprise.run-id": run_id},
        )
    )
    backend.jobs_made[job].phase = "running"
    run = write_run(
        tmp_path,
        valid_record(
            run_id=run_id,
            status="running",
            exit_code=None,
            finished_at=None,
            container={"id": job},
        ),
    )
    (run / "logs").mkdir()
    monkeypatch.setattr("reprise.execution.backend_for", lambda _: backend)
    return run


def test_stop_and_logs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    backend = FakeBackend(output=["epoch 1", "epoch 2"])
    run = _running(tmp_path, backend, monkeypatch)
    logs = _invoke("logs", "latest", "-f", "--runs-dir", str(tmp_path))
    assert logs.exit_code == 0 and logs.stdout == "epoch 1\nepoch 2\n"
    stopped = _invoke("stop", "feedf00d", "--runs-dir", str(tmp_path), "--json")
    assert stopped.exit_code == 0, stopped.stderr
    record: dict[str, Any] = json.loads(stopped.stdout)
    assert record["status"] == "interrupted" and "reprise stop" in record["reason"]
    assert "stopping run" in stopped.stderr and backend.stopped
    assert read_record(run)["status"] == "interrupted"
    again = _invoke("stop", "feedf00d", "--runs-dir", str(tmp_path))
    assert again.exit_code == 0 and "has already ended: interrupted" in again.stderr


def test_gc_wording() -> None:
    from reprise.commands.gc import describe

    empty = {"containers": [], "images": [], "bytes": 0, "removed": False}
    assert describe(empty) == [
        "would remove 0 images (0 B) and 0 stopped containers: nothing to do"
    ]
    image = {"id": "sha256:" + "a" * 64, "tags": ["reprise/x:1"], "size": 3 << 20, "kind": "image"}
    some = {"containers": ["b" * 64], "images": [image], "bytes": 3 << 20, "removed": False}
    assert describe(some) == [
        f"would remove stopped container {'b' * 12} (its run has ended)",
        f"would remove image sha256:{'a' * 64} reprise/x:1 (3.0 MiB)",
        "would remove 1 image (3.0 MiB) and 1 stopped container; pass --yes to remove them",
    ]
    assert describe({**some, "removed": True})[-1] == (
        "removed 1 image (3.0 MiB) and 1 stopped container"
    )


@pytest.mark.parametrize("shell", ["bash", "zsh", "fish"])
def test_completion_prints_clicks_script(shell: str) -> None:
    result = _invoke("completion", shell)
    assert result.exit_code == 0
    assert "_REPRISE_COMPLETE" in result.stdout
    assert f"{shell}_complete" in result.stdout


def test_the_entry_point_answers_the_completion_script(runs: Path) -> None:
    import os
    import subprocess
    import sys

    reprise = Path(sys.executable).parent / "reprise"
    env = {
        **os.environ,
        "_REPRISE_COMPLETE": "bash_complete",
        "COMP_WORDS": f"reprise show --runs-dir {runs} base",
        "COMP_CWORD": "4",
    }
    done = subprocess.run([str(reprise)], env=env, capture_output=True, text=True, check=False)
    assert done.returncode == 0 and done.stdout.splitlines() == ["plain,baseline"]


def test_completion_of_run_ids_and_names(runs: Path) -> None:
    from click.shell_completion import ShellComplete

    complete = ShellComplete(cli, {}, "reprise", "_REPRISE_COMPLETE")
    found = [c.value for c in complete.get_completions(["show", "--runs-dir", str(runs)], "")]
    assert "latest" in found and "baseline" in found
    assert "20261123-140000-000001-5f3a9c1e" in found
    prefix = [c.value for c in complete.get_completions(["show", "--runs-dir", str(runs)], "ba")]
    assert prefix == ["baseline"]
    commands = [c.value for c in complete.get_completions([], "co")]
    assert {"compare", "completion"} <= set(commands)


def test_show_of_a_failed_run_gives_reason_hint_paths_and_the_log_tail(tmp_path: Path) -> None:
    run = write_run(
        tmp_path,
        valid_record(
            run_id="20261126-140000-000001-deadbeef",
            status="failed",
            exit_code=1,
            reason="the job exited with code 1: ValueError: bad \x1b[31mred",
            hint="check the config",
        ),
    )
    (run / "logs").mkdir(exist_ok=True)
    (run / "logs/run.log").write_text("".join(f"line {i}\n" for i in range(40)) + "boom\x07\n")
    (run / "FAILED").write_text("status: failed\n")
    shown = _invoke("show", str(run)).stdout.splitlines()
    assert (
        "status     failed (exit code 1): the job exited with code 1: ValueError: bad \\x1b[31mred"
        in shown
    )
    assert "hint       check the config" in shown
    assert f"failed     {run / 'FAILED'}" in shown and f"log        {run / 'logs/run.log'}" in shown
    at = shown.index("--- last 15 lines of logs/run.log ---")
    assert shown[at + 1 :] == [f"line {i}" for i in range(26, 40)] + ["boom\\x07"]
    ok = write_run(tmp_path, valid_record(run_id="20261126-150000-000001-0000beef"))
    assert "log " not in _invoke("show", str(ok)).stdout  # a run that succeeded: no failure part
