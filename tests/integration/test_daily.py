"""Daily use against the real engine: a run named at start, its output read while it runs,
stopped with `reprise stop` (whether or not another CLI follows it) and recorded
`interrupted`, its container gone, then removed with `reprise rm`."""

from __future__ import annotations

import json
import re
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

from reprise.commands import build as builder
from reprise.edges.docker import Engine
from reprise.edges.runstore import read_record

from ..engine_fixtures import container_state, start_cli_run
from .test_reliability import reprise

TALK_THEN_SLEEP = (
    "import time\nfor i in range(3):\n    print('line', i, flush=True)\ntime.sleep(300)\n"
)


def _until(predicate: object, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():  # type: ignore[operator]
            return
        time.sleep(0.2)
    raise AssertionError("timed out")


def test_a_named_detached_run_read_stopped_and_removed(
    example: Path, engine: Engine, image: builder.BuildResult
) -> None:
    started = reprise(
        example, "run", "--detach", "--json", "--name", "sleeper",
        "--", "python", "-c", TALK_THEN_SLEEP,
    )  # fmt: skip
    assert started.returncode == 0, started.stderr
    record = json.loads(started.stdout)
    assert record["name"] == "sleeper" and record["status"] == "running"
    container = record["container"]["id"]
    taken = reprise(example, "run", "--name", "sleeper", "--", "true")
    assert taken.returncode == 2 and "'sleeper' is taken" in taken.stderr

    def said_everything() -> bool:
        return b"line 2" in reprise(example, "logs", "sleeper").stdout.encode()

    _until(said_everything)  # from the engine: a detached run has no follower writing run.log
    follower = subprocess.Popen(
        [sys.executable, "-m", "reprise", "--project", str(example), "logs", "-f", "sleeper"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    time.sleep(1.0)
    refused = reprise(example, "rm", "sleeper", "--yes")
    assert refused.returncode == 2 and "is running: not removed" in refused.stderr
    stopped = reprise(example, "stop", "sleeper", "--time", "2", "--json")
    assert stopped.returncode == 0, stopped.stderr
    final = json.loads(stopped.stdout)
    assert final["status"] == "interrupted" and "reprise stop" in final["reason"]
    out, _ = follower.communicate(timeout=60)  # -f ends with the job
    assert out.splitlines() == ["line 0", "line 1", "line 2"]
    assert container_state(engine, container) is None
    run_dir = example / "runs" / "spiral" / record["run_id"]
    assert "line 2" in (run_dir / "logs" / "run.log").read_text()  # collected as it ended
    assert reprise(example, "logs", "sleeper").stdout.splitlines()[-1] == "line 2"
    listed = reprise(example, "ls", "--tag", "x")
    assert listed.returncode == 0
    tagged = reprise(example, "tag", "sleeper", "x")
    assert tagged.returncode == 0, tagged.stderr
    assert record["run_id"] in reprise(example, "ls", "--tag", "x").stdout
    removed = reprise(example, "rm", "sleeper", "--yes")
    assert removed.returncode == 0, removed.stderr
    assert not run_dir.exists()


def test_stop_while_another_cli_follows_the_run_records_interrupted(
    example: Path, engine: Engine, image: builder.BuildResult
) -> None:
    cli, run_dir = start_cli_run(example, "ready-to-stop")
    container = read_record(run_dir)["container"]["id"]
    stopped = reprise(example, "stop", run_dir.name[-8:], "--time", "2")
    assert stopped.returncode == 0, stopped.stderr
    assert "status   interrupted" in stopped.stdout
    out, _ = cli.communicate(timeout=60)
    assert cli.returncode == 1
    record = json.loads(out)  # the following CLI's own answer agrees
    assert record["status"] == "interrupted" and record["exit_code"] is None
    assert read_record(run_dir)["reason"] == "stopped with `reprise stop`"
    assert container_state(engine, container) is None


def test_a_two_by_two_sweep_builds_once_runs_two_at_a_time_and_compares(
    example: Path, engine: Engine, image: builder.BuildResult
) -> None:
    swept = reprise(
        example, "run", "-m", "-j", "2", "--json",
        "train.epochs=1", "optim.lr=0.01,0.1", "seed=range(1,3)",
    )  # fmt: skip
    assert swept.returncode == 0, swept.stderr
    answer = json.loads(swept.stdout)
    assert answer["runs"] == answer["planned"] == 4 and answer["statuses"] == {"succeeded": 4}
    assert "optim.lr" in answer["comparison"]["config_keys"]
    listed = json.loads(reprise(example, "ls", "--sweep", "latest", "--json").stdout)
    records = [read_record(Path(s["path"])) for s in listed]
    assert sorted(r["sweep"]["index"] for r in records) == [0, 1, 2, 3]
    assert {r["sweep"]["id"] for r in records} == {answer["sweep"]}
    assert {r["image"]["id"] for r in records} == {image.image_id}  # one image for all
    assert sorted((r["config"]["overrides"][1], r["seed"]) for r in records) == [
        ("optim.lr=0.01", 1), ("optim.lr=0.01", 2), ("optim.lr=0.1", 1), ("optim.lr=0.1", 2),
    ]  # fmt: skip
    compared = reprise(example, "compare", "--sweep", answer["sweep"][-8:], "--csv")
    assert compared.returncode == 0, compared.stderr
    rows = compared.stdout.splitlines()
    assert len(rows) == 5 and "optim.lr" in rows[0] and "seed" in rows[0]
    a, b = (r["run_id"] for r in sorted(records, key=lambda r: r["sweep"]["index"])[:2])
    differ = reprise(example, "diff", a, b)
    assert differ.returncode == 5, differ.stderr
    text = differ.stdout.splitlines()
    assert text.index("inputs") < text.index("  config       seed: 1 -> 2")
    (checkpoint,) = [line for line in text if line.startswith("  checkpoints/final.pt:")]
    assert re.search(r": \d+ of \d+ tensors differ, max abs diff \S+ \(model\.", checkpoint)
    assert "rerun" not in differ.stdout
    every = reprise(example, "diff", a, b, "-v").stdout
    assert every.count("checkpoints/final.pt: tensor ") > 1


WRITES_METRICS = (
    "import json, os\n"
    "with open(os.path.join(os.environ['REPRISE_OUTPUTS'], 'metrics.jsonl'), 'w') as f:\n"
    "    for step in range(3):\n"
    "        f.write(json.dumps({'step': step, 'val_loss': 1.0 / (step + 1)}) + '\\n')\n"
)


def _card_of_a_run_showing_val_loss(example: Path, job: str) -> str:
    """The card of a run of ``job`` (Python), whose `reprise show` names val_loss."""
    ran = reprise(example, "run", "--json", "--", "python", "-c", job)
    assert ran.returncode == 0, ran.stderr
    run_id = str(json.loads(ran.stdout)["run_id"])
    shown = reprise(example, "show", run_id).stdout
    assert "metric     val_loss: final 0.333333, best 0.333333 (min)" in shown
    return (example / "runs" / "spiral" / run_id / "model_card.md").read_text()


def test_metrics_written_into_outputs_reach_show_and_the_card(
    example: Path, engine: Engine, image: builder.BuildResult
) -> None:
    card = _card_of_a_run_showing_val_loss(example, WRITES_METRICS)
    assert "Metrics the run logged (`outputs/metrics.jsonl`):" in card
    assert "| val_loss | 0.333333 | 0.333333 (min) | 2 |" in card


def test_metrics_a_job_logged_only_to_tensorboard_reach_show_and_the_card(
    example: Path, engine: Engine, image: builder.BuildResult, tmp_path: Path
) -> None:
    """The event file is made here by TensorBoard's own writer (the image has no
    TensorBoard); the job writes its bytes where a SummaryWriter would."""
    import base64

    from tensorboard.compat.proto import event_pb2, summary_pb2
    from tensorboard.summary.writer.event_file_writer import EventFileWriter

    writer = EventFileWriter(str(tmp_path))
    for step in range(3):
        value = summary_pb2.Summary.Value(tag="val_loss", simple_value=1.0 / (step + 1))
        writer.add_event(event_pb2.Event(step=step, summary=summary_pb2.Summary(value=[value])))
    writer.close()
    (events,) = tmp_path.glob("events.out.tfevents.*")
    job = (
        "import base64, os\n"
        "folder = os.path.join(os.environ['REPRISE_OUTPUTS'], 'tb')\n"
        "os.makedirs(folder)\n"
        f"open(os.path.join(folder, {events.name!r}), 'wb').write("
        f"base64.b64decode({base64.b64encode(events.read_bytes()).decode()!r}))\n"
    )
    card = _card_of_a_run_showing_val_loss(example, job)
    assert "Metrics the run logged (TensorBoard event files in `outputs/tb`):" in card
    assert "| val_loss | 0.333333 | 0.333333 (min) | 2 |" in card


def _many_runs_walkthrough() -> list[str]:
    text = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    section = text.split("### Many runs", 1)[1].split("```sh", 1)[1].split("```", 1)[0]
    return [re.split(r"\s{2,}#", line)[0].strip() for line in section.splitlines() if line.strip()]


def test_the_readmes_many_runs_walkthrough_runs_as_written(
    example: Path, engine: Engine, image: builder.BuildResult
) -> None:
    lines = _many_runs_walkthrough()
    assert len(lines) >= 10 and lines[0].startswith("reprise run -m ")
    for line in lines:
        argv = shlex.split(line)
        assert argv[0] == "reprise"
        done = reprise(example, *argv[1:], timeout=600)
        expected = (0, 5) if argv[1] == "diff" else (0,)  # diff: 5 when the outputs differ
        assert done.returncode in expected, f"{line}\n{done.stdout}\n{done.stderr}"
        assert "Traceback" not in done.stderr, line


def test_ctrl_c_in_attach_says_detached_only_and_the_run_goes_on(
    example: Path, engine: Engine, image: builder.BuildResult
) -> None:
    started = reprise(example, "run", "--detach", "--json", "--", "python", "-c", TALK_THEN_SLEEP)
    assert started.returncode == 0, started.stderr
    run_id = json.loads(started.stdout)["run_id"]
    attach = subprocess.Popen(
        [sys.executable, "-m", "reprise", "--project", str(example), "attach", run_id],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    time.sleep(3.0)
    attach.send_signal(signal.SIGINT)
    _, err = attach.communicate(timeout=60)
    assert attach.returncode == 130
    assert "detached; the run goes on" in err and "interrupted" not in err, err
    assert read_record(example / "runs" / "spiral" / run_id)["status"] == "running"
    stopped = reprise(example, "stop", run_id, "--time", "1")
    assert stopped.returncode == 0, stopped.stderr
