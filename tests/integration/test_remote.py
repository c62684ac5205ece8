"""Runs on remote Docker hosts over SSH, for real: two extra machines made on this one by
docker/testhosts.sh (a network namespace each, with its own dockerd and sshd; brought up once
per session, left up). Nothing crosses by bind mount: inputs are streamed in, outputs back."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from reprise.commands import build as builder
from reprise.core import keys
from reprise.edges.docker import Engine
from reprise.edges.runstore import read_record

from .test_reliability import REPRISE, _wait_for, reprise

ROOT = Path(__file__).resolve().parents[2]
HOSTS = ("h1", "h2")


@pytest.fixture(scope="session")
def hosts(engine: Engine) -> Iterator[dict[str, dict[str, str]]]:
    """The test hosts (NAME -> url, registry as the host reaches this machine's), up."""
    if os.getuid() != 0 and not os.environ.get("REPRISE_REQUIRE_ENGINE"):
        pytest.skip("test hosts need root (network namespaces)")
    up = subprocess.run(
        ["bash", str(ROOT / "docker" / "testhosts.sh"), "up", *HOSTS],
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    assert up.returncode == 0, up.stderr[-4000:]
    found = {}
    for line in up.stdout.splitlines():
        parts = line.split()
        if len(parts) == 4 and parts[0] in HOSTS:
            found[parts[0]] = {"url": parts[1], "registry": parts[3]}
    assert set(found) == set(HOSTS), up.stdout
    yield found
    for info in found.values():  # every test removes what it started there
        remote = Engine.connect(info["url"])
        left = remote.containers_with_label(keys.LABEL_RUN_DIR)
        for container in left:
            remote.remove_container(container)
        assert left == [], f"containers left behind on {info['url']}"


def _record(result: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    assert "Traceback" not in result.stderr, result.stderr
    return dict(json.loads(result.stdout))


def _run_dir(example: Path, record: dict[str, Any]) -> Path:
    return example / "runs" / "spiral" / str(record["run_id"])


def _manifest(run_dir: Path) -> dict[str, str]:
    entries = json.loads((run_dir / "manifest.json").read_text())["files"]
    return {e["path"]: e.get("hash") or e.get("kind") for e in entries}


def _testhosts(*args: str) -> None:
    done = subprocess.run(
        ["bash", str(ROOT / "docker" / "testhosts.sh"), *args],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-4000:]


def test_a_run_on_a_remote_host_streams_the_image_and_brings_its_outputs_home(
    example: Path, engine: Engine, image: builder.BuildResult, hosts: dict[str, dict[str, str]]
) -> None:
    url = hosts["h1"]["url"]
    remote = Engine.connect(url)
    if remote.image_attrs(image.image_id) is not None:
        remote.remove_image(image.image_id, force=True)  # so that it has to cross
    result = reprise(example, "run", "--host", url, "--json", "train.epochs=2", "--seed", "7")
    assert result.returncode == 0, result.stderr
    record = _record(result)
    assert f"sending image {image.image_id[:19]} to {url}" in result.stderr
    assert record["executor"] == {"kind": "remote", "host": url}
    assert record["fetched"] is True and record["status"] == "succeeded"
    assert record["host"]["address"] == url and record["host"]["cpu"]
    run_dir = _run_dir(example, record)
    assert (run_dir / "outputs" / "summary.json").is_file()
    assert "epoch   2" in (run_dir / "logs" / "run.log").read_text()
    assert remote.containers_with_label(keys.LABEL_RUN_DIR) == []  # removed once fetched
    # The same run here gives the same bytes.
    local = reprise(example, "run", "--host", "local", "--json", "train.epochs=2", "--seed", "7")
    assert local.returncode == 0, local.stderr
    local_record = _record(local)
    assert local_record["executor"]["kind"] == "local"
    assert _manifest(_run_dir(example, local_record)) == _manifest(run_dir)
    # ... and reproducing the remote run here proves it.
    again = reprise(example, "reproduce", record["run_id"], "--host", "local", "--json")
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout)["verdict"] == "identical"


HOSTILE = (
    "import os\n"
    "open('scratch.txt', 'w').write('made in the working directory\\n')\n"
    "out = os.environ['REPRISE_OUTPUTS']\n"
    "open(os.path.join(out, 'kept.txt'), 'w').write('ok\\n')\n"
    "os.symlink('/etc/shadow', os.path.join(out, 'shadow'))\n"
    "os.symlink('/', os.path.join(out, 'root'))\n"
    "os.mkfifo(os.path.join(out, 'pipe'))\n"
    "d = out\n"
    "for _ in range(300):\n"
    "    d = os.path.join(d, 'd'); os.mkdir(d)\n"
)


def test_what_a_remote_job_writes_comes_home_as_what_it_is_never_followed(
    example: Path, image: builder.BuildResult, hosts: dict[str, dict[str, str]]
) -> None:
    shadow = Path("/etc/shadow").read_bytes() if Path("/etc/shadow").exists() else None
    result = reprise(
        example, "run", "--host", hosts["h1"]["url"], "--json", "--", "python", "-c", HOSTILE
    )
    assert result.returncode == 0, result.stderr
    record = _record(result)
    run_dir = _run_dir(example, record)
    outputs = run_dir / "outputs"
    assert (outputs / "kept.txt").read_text() == "ok\n"
    assert (outputs / "shadow").is_symlink() and os.readlink(outputs / "shadow") == "/etc/shadow"
    assert (outputs / "root").is_symlink()
    kinds = {
        e["path"]: e.get("kind", "file")
        for e in json.loads((run_dir / "manifest.json").read_text())["files"]
    }
    assert kinds["outputs/shadow"] == "symlink" and kinds["outputs/pipe"] == "fifo"
    # The working directory: only what the job changed comes home, not the code.
    assert (run_dir / "work" / "scratch.txt").read_text() == "made in the working directory\n"
    assert not (run_dir / "work" / "train.py").exists()
    if shadow is not None:
        assert Path("/etc/shadow").read_bytes() == shadow
    if os.getuid() == 0:
        assert {p.stat(follow_symlinks=False).st_uid for p in outputs.rglob("*")} == {0}


def test_a_local_run_reproduces_on_a_remote_host_pulled_by_digest(
    example: Path, engine: Engine, image: builder.BuildResult, hosts: dict[str, dict[str, str]]
) -> None:
    done = reprise(example, "run", "--host", "local", "--json", "train.epochs=2")
    assert done.returncode == 0, done.stderr
    run_id = _record(done)["run_id"]
    pushed = reprise(example, "push", run_id, "--registry", "127.0.0.1:5000/remote-test")
    assert pushed.returncode == 0, pushed.stderr
    h2 = hosts["h2"]
    remote = Engine.connect(h2["url"])
    if remote.image_attrs(image.image_id) is not None:
        remote.remove_image(image.image_id, force=True)  # so that it has to be pulled
    registry = f"{h2['registry']}/remote-test"  # the same registry, as that host reaches it
    result = reprise(
        example, "reproduce", run_id, "--host", h2["url"], "--registry", registry, "--json"
    )
    assert result.returncode == 0, result.stderr
    verdict = json.loads(result.stdout)
    assert verdict["verdict"] == "identical"
    assert verdict["image"]["source"].startswith(f"pulled {registry}/")
    assert "@sha256:" in verdict["image"]["source"]
    rerun = read_record(Path(verdict["rerun_dir"]))
    assert rerun["executor"] == {"kind": "remote", "host": h2["url"]}


SLOW = "import time\nfor i in range(60):\n    print('tick', i, flush=True)\n    time.sleep(0.5)\n"


def test_a_killed_cli_leaves_the_remote_job_running_and_attach_brings_it_home(
    example: Path, image: builder.BuildResult, hosts: dict[str, dict[str, str]]
) -> None:
    url = hosts["h2"]["url"]
    short = (
        "import time\nfor i in range(8):\n    print('line', i, flush=True)\n    time.sleep(0.5)\n"
    )
    cli = subprocess.Popen(
        [
            *REPRISE,
            "--project",
            str(example),
            "run",
            "--host",
            url,
            "--json",
            "--",
            "python",
            "-c",
            short,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    runs = example / "runs" / "spiral"
    before = {p.name for p in runs.iterdir()}

    def started() -> Path | None:
        for p in sorted(runs.iterdir()):
            log = p / "logs" / "run.log"
            if p.name not in before and log.is_file() and b"line 1" in log.read_bytes():
                return p
        return None

    run_dir = _wait_for(started, timeout=120, what="the remote job's output")
    left = [  # the killed CLI's private folder (its socket, the SSH control path)
        folder
        for folder in Path(tempfile.gettempdir()).glob("reprise-ssh-*")
        if (folder / "owner").is_file()
        and (folder / "owner").read_text().split()[:1] == [str(cli.pid)]
    ]
    assert len(left) == 1, left
    cli.send_signal(signal.SIGKILL)
    cli.wait(timeout=10)
    assert read_record(run_dir)["status"] == "running"
    assert left[0].is_dir()  # no atexit ran
    attached = reprise(example, "attach", run_dir.name, "--json")
    assert attached.returncode == 0, attached.stderr
    assert not left[0].exists()  # the next remote session swept it
    record = _record(attached)
    assert record["status"] == "succeeded" and record["fetched"] is True
    assert (run_dir / "logs" / "run.log").read_text().splitlines() == [
        f"line {i}" for i in range(8)
    ]


def test_a_remote_engine_that_stops_mid_run_is_a_clear_error_then_a_true_record(
    example: Path, image: builder.BuildResult, hosts: dict[str, dict[str, str]]
) -> None:
    url = hosts["h1"]["url"]
    started = reprise(
        example, "run", "--host", url, "--detach", "--json", "--", "python", "-c", SLOW
    )
    assert started.returncode == 0, started.stderr
    run_id = _record(started)["run_id"]
    run_dir = example / "runs" / "spiral" / run_id
    _wait_for(lambda: (run_dir / "logs").is_dir(), what="the run directory")
    _testhosts("engine-stop", "h1")
    try:
        waited = reprise(example, "wait", run_id)
        assert waited.returncode == 3, waited.stderr  # the engine, not the job
        assert "Traceback" not in waited.stderr and url in waited.stderr
        assert read_record(run_dir)["status"] == "running"  # nothing claimed while unknown
        listed = reprise(example, "ls")
        assert listed.returncode == 0 and "shown as recorded" in listed.stderr
    finally:
        _testhosts("engine-start", "h1")
    waited = reprise(example, "wait", run_id, "--json")
    record = _record(waited)
    assert record["status"] == "failed" and record["exit_code"] not in (0, None)
    assert record["fetched"] is True and record["reason"]


def test_outputs_that_could_not_come_home_stay_there_until_reprise_fetch(
    example: Path, image: builder.BuildResult, hosts: dict[str, dict[str, str]]
) -> None:
    url = hosts["h2"]["url"]
    job = "import os\nopen(os.environ['REPRISE_OUTPUTS'] + '/result.txt', 'w').write('42\\n')\n"
    started = reprise(
        example, "run", "--host", url, "--detach", "--json", "--", "python", "-c", job
    )
    assert started.returncode == 0, started.stderr
    record = _record(started)
    container = record["container"]["id"]
    remote = Engine.connect(url)
    _wait_for(
        lambda: not ((remote.inspect_container(container) or {}).get("State") or {}).get("Running"),
        what="the remote job to end",
    )
    run_dir = _run_dir(example, record)
    outputs = run_dir / "outputs"
    outputs.rmdir()
    outputs.write_text("in the way")  # the outputs cannot be written here now
    waited = reprise(example, "wait", record["run_id"], "--json")
    record = _record(waited)
    assert record["fetched"] is False and record["manifest"] is None
    assert any(f"reprise fetch {record['run_id']}" in w for w in record["warnings"])
    assert remote.inspect_container(container) is not None  # kept there for the fetch
    refused = reprise(example, "reproduce", record["run_id"])
    assert refused.returncode == 2 and "reprise fetch" in refused.stderr
    outputs.unlink()
    fetched = reprise(example, "fetch", record["run_id"], "--json")
    assert fetched.returncode == 0, fetched.stderr
    record = _record(fetched)
    assert record["fetched"] is True and record["manifest"]["files"] >= 1
    assert (outputs / "result.txt").read_text() == "42\n"
    assert not any("could not be fetched" in w for w in record.get("warnings") or [])
    assert remote.inspect_container(container) is None
    assert reprise(example, "fetch", record["run_id"]).returncode == 0  # again: nothing to do


def test_an_unknown_host_is_refused_before_anything_is_built_or_recorded(
    example: Path, hosts: dict[str, dict[str, str]]
) -> None:
    runs = example / "runs" / "spiral"
    before = set(runs.iterdir()) if runs.is_dir() else set()
    started = time.monotonic()
    result = reprise(example, "run", "--host", "ssh://reprise-nowhere")
    assert result.returncode == 3, result.stderr
    assert "reprise-nowhere" in result.stderr and "Traceback" not in result.stderr
    assert time.monotonic() - started < 60
    bad = reprise(example, "run", "--host", "ftp://box")
    assert bad.returncode == 2 and "Traceback" not in bad.stderr
    after = set(runs.iterdir()) if runs.is_dir() else set()
    assert after == before
