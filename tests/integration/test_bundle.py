"""Bundles against the real engine: round trip, determinism, and hostile input."""

from __future__ import annotations

import io
import json
import shutil
import tarfile
from pathlib import Path
from typing import Any

import blake3
import pytest
from click.testing import CliRunner, Result

from reprise.cli import cli
from reprise.commands import build as builder
from reprise.edges.docker import Engine
from reprise.edges.project import Project
from reprise.edges.runstore import read_record

from ..bundlecraft import Crafted, Member, read_members
from ..engine_fixtures import Cleanup, run_example


def _cli(example: Path, *args: str) -> Result:
    return CliRunner().invoke(cli, ["--project", str(example), *args])


@pytest.fixture(scope="module")
def exported(
    example: Path,
    project: Project,
    engine: Engine,
    image: builder.BuildResult,
    tmp_path_factory: pytest.TempPathFactory,
) -> tuple[Path, Path, dict[str, Any]]:
    run_dir, record = run_example(project, engine, image, overrides=("train.epochs=10",))
    out = tmp_path_factory.mktemp("bundles") / "run.reprise"
    result = _cli(example, "bundle", "export", run_dir.name, "-o", str(out), "--with-outputs")
    assert result.exit_code == 0, result.stderr
    return out, run_dir, record


def test_export_twice_gives_the_same_bytes(
    example: Path, exported: tuple[Path, Path, dict[str, Any]]
) -> None:
    first, run_dir, _ = exported
    second = first.with_name("again.reprise")
    result = _cli(example, "bundle", "export", run_dir.name, "-o", str(second), "--with-outputs")
    assert result.exit_code == 0, result.stderr
    assert first.read_bytes() == second.read_bytes()


def test_inspect_reads_the_index_without_loading(
    exported: tuple[Path, Path, dict[str, Any]],
) -> None:
    path, _, record = exported
    result = CliRunner().invoke(cli, ["bundle", "inspect", str(path), "--json"])
    assert result.exit_code == 0, result.stderr
    info = json.loads(result.stdout)
    assert info["run_id"] == record["run_id"]
    assert info["image"]["id"] == record["image"]["id"]
    paths = {m["path"] for m in info["members"]}
    assert {
        "run/run.json",
        "run/config.yaml",
        "run/uv.lock",
        "run/Dockerfile",
        "run/manifest.json",
        "code/train.py",
        "run/checkpoints/final.pt",
    } <= paths
    assert any(p.startswith("image/") for p in paths)
    human = CliRunner().invoke(cli, ["bundle", "inspect", str(path)])
    assert f"run         {record['run_id']}" in human.stdout


def test_import_after_deleting_everything_then_reproduce_identical(
    example: Path,
    engine: Engine,
    image: builder.BuildResult,
    exported: tuple[Path, Path, dict[str, Any]],
    tmp_path: Path,
) -> None:
    path, run_dir, record = exported
    shutil.rmtree(run_dir)
    engine.remove_image(image.image_id, force=True)
    assert engine.image_attrs(image.image_id) is None
    runs = tmp_path / "elsewhere"  # a collaborator's machine: no git repository, no cache
    try:
        result = CliRunner().invoke(
            cli, ["bundle", "import", str(path), "--runs-dir", str(runs), "--json"]
        )
        assert result.exit_code == 0, result.stderr
        imported = json.loads(result.stdout)
        assert imported["image_loaded"] is True and imported["image_id"] == record["image"]["id"]
        # Tagged in reprise's own namespace only: the project's name is never taken by an import.
        attrs = engine.image_attrs(f"reprise/imports:{record['run_id']}")
        assert attrs is not None and attrs["Id"] == record["image"]["id"]
        assert engine.image_attrs(image.plan.tag) is None
        assert attrs["RepoTags"] == [f"reprise/imports:{record['run_id']}"]  # no archive tags
    finally:
        if engine.image_attrs(image.image_id) is not None:
            repo, tag = image.plan.tag.split(":")
            engine.tag(image.image_id, repo, tag)  # keep the shared image for others
    imported_record = read_record(Path(imported["run_dir"]))
    assert imported_record["run_id"] == record["run_id"]
    said = imported_record["imported"]  # the record says it was made elsewhere
    assert said["bundle"] == path.name and said["with_outputs"] is True
    assert said["outputs_checked"] >= 2 and said["at"]  # every output, against the manifest
    assert said["outputs_absent"] == 0
    shown = CliRunner().invoke(cli, ["show", record["run_id"], "--runs-dir", str(runs)])
    assert f"from {path.name} ({said['outputs_checked']} output files checked" in shown.stdout
    again = CliRunner().invoke(
        cli, ["bundle", "import", str(path), "--runs-dir", str(runs), "--json"]
    )
    assert again.exit_code == 0 and json.loads(again.stdout)["already_imported"] is True
    reproduced = CliRunner().invoke(
        cli,
        ["reproduce", record["run_id"], "--runs-dir", str(runs), "--json"],
        catch_exceptions=False,
    )
    assert reproduced.exit_code == 0, reproduced.stderr
    assert json.loads(reproduced.stdout)["verdict"] == "identical"


def test_reproduce_takes_a_bundle_file(
    exported: tuple[Path, Path, dict[str, Any]], tmp_path: Path
) -> None:
    path, _, record = exported
    result = CliRunner().invoke(
        cli, ["reproduce", str(path), "--runs-dir", str(tmp_path / "r"), "--json"]
    )
    assert result.exit_code == 0, result.stderr
    verdict = json.loads(result.stdout)
    assert verdict["run_id"] == record["run_id"] and verdict["verdict"] == "identical"


def test_reproduce_takes_a_bundle_file_outside_any_project(
    exported: tuple[Path, Path, dict[str, Any]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The air-gapped collaborator: a bundle, no project, no --runs-dir: ./runs."""
    path, _, record = exported
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(cli, ["reproduce", str(path), "--json"])
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)["verdict"] == "identical"
    assert "no project here: the bundle's run goes to ./runs" in result.stderr
    assert (tmp_path / "runs" / record["experiment"] / record["run_id"] / "run.json").is_file()


def test_push_to_an_unreachable_registry_exits_3_and_records_nothing(
    example: Path, project: Project, engine: Engine, image: builder.BuildResult
) -> None:
    run_dir, _ = run_example(project, engine, image, overrides=("train.epochs=10",))
    result = _cli(example, "push", run_dir.name, "--registry", "127.0.0.1:5999/nowhere")
    assert result.exit_code == 3
    assert "push of 127.0.0.1:5999/nowhere" in result.stderr and "hint:" in result.stderr
    assert read_record(run_dir)["image"]["repo_digest"] is None


# --- hostile bundles ---------------------------------------------------------------------
RUN_JSON = json.dumps(
    {"run_id": "20260101-000000-00000000", "image": {"id": "sha256:" + "0" * 64}}
).encode()


def _ok() -> list[Member]:
    return [Member("run/run.json", RUN_JSON), Member("code/train.py", b"print(1)\n")]


def _bad_hash(index: list[Any]) -> list[Any]:
    from dataclasses import replace

    return [replace(e, hash="0" * 64) if e.path == "code/train.py" else e for e in index]


def _small_size(index: list[Any]) -> list[Any]:
    from dataclasses import replace

    return [replace(e, size=10) if e.path == "code/train.py" else e for e in index]


HOSTILE: dict[str, tuple[Crafted, str]] = {
    "dotdot": (Crafted([*_ok(), Member("run/../../escaped.txt", b"x")]), "'..'"),
    "absolute": (Crafted([*_ok(), Member("/tmp/escaped.txt", b"x")]), "absolute"),
    "symlink-out": (
        Crafted([*_ok(), Member("run/link", type=tarfile.SYMTYPE, linkname="/etc/passwd")]),
        "symlink 'run/link' -> '/etc/passwd' leaves the bundle",
    ),
    "hardlink-out": (
        Crafted([*_ok(), Member("run/hard", type=tarfile.LNKTYPE, linkname="../../etc/passwd")]),
        "hard link 'run/hard' -> '../../etc/passwd' leaves the bundle",
    ),
    "device": (Crafted([*_ok(), Member("run/dev", type=tarfile.CHRTYPE)]), "device node"),
    "fifo": (Crafted([*_ok(), Member("run/fifo", type=tarfile.FIFOTYPE)]), "is a FIFO"),
    "duplicate": (Crafted([*_ok(), Member("code/train.py", b"print(1)\n")]), "appears twice"),
    "hash": (Crafted(_ok(), tamper=_bad_hash), "does not match its hash"),
    "bomb": (
        Crafted(
            [Member("run/run.json", RUN_JSON), Member("code/train.py", b"x" * 5_000_000)],
            tamper=_small_size,
        ),
        "far larger than the 10 its index says",
    ),
    "unindexed": (Crafted(_ok(), tamper=lambda index: index[:1]), "not in the bundle's index"),
}


def _snapshot(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_hostile_bundle_is_refused_and_nothing_is_written_outside(
    case: str, tmp_path: Path
) -> None:
    crafted, message = HOSTILE[case]
    bundle = crafted.write(tmp_path / f"{case}.reprise")
    runs = tmp_path / "work" / "runs"
    runs.mkdir(parents=True)
    before = _snapshot(tmp_path)
    result = CliRunner().invoke(cli, ["bundle", "import", str(bundle), "--runs-dir", str(runs)])
    assert result.exit_code == 2, (case, result.stderr, result.exception)
    assert message in result.stderr, (case, result.stderr)
    assert "Traceback" not in result.stderr
    assert _snapshot(tmp_path) == before  # no run, no staging left, nothing outside
    assert not Path("/tmp/escaped.txt").exists()


def test_truncated_and_corrupt_files(
    exported: tuple[Path, Path, dict[str, Any]], tmp_path: Path
) -> None:
    path, _, _ = exported
    data = path.read_bytes()
    truncated = tmp_path / "truncated.reprise"
    truncated.write_bytes(data[: len(data) // 2])
    corrupt = tmp_path / "corrupt.reprise"
    middle = len(data) // 3
    corrupt.write_bytes(
        data[:middle]
        + bytes(b ^ 0xFF for b in data[middle : middle + 4096])
        + data[middle + 4096 :]
    )
    not_a_bundle = tmp_path / "text.reprise"
    not_a_bundle.write_text("hello\n")
    runs = tmp_path / "runs"
    for bad, words in ((truncated, "truncated"), (corrupt, "corrupt"), (not_a_bundle, "corrupt")):
        result = CliRunner().invoke(cli, ["bundle", "import", str(bad), "--runs-dir", str(runs)])
        assert result.exit_code == 2, (bad.name, result.stderr)
        assert words in result.stderr, (bad.name, result.stderr)
        assert not any(runs.rglob("run.json")) and not list(runs.glob(".import-*"))


def _tiny_image(engine: Engine, cleanup: Cleanup, content: bytes) -> dict[str, Any]:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        info = tarfile.TarInfo("hello.txt")
        info.size = len(content)
        tar.addfile(info, io.BytesIO(content))
    out = engine._client.api.import_image_from_data(buf.getvalue())
    image_id = json.loads(out.strip().splitlines()[-1])["status"]
    cleanup.image(image_id)
    attrs = engine.image_attrs(image_id)
    assert attrs is not None
    return attrs


@pytest.mark.parametrize("present", [True, False])
def test_image_that_is_not_the_recorded_one_is_refused(
    engine: Engine, cleanup: Cleanup, tmp_path: Path, present: bool
) -> None:
    recorded = _tiny_image(engine, cleanup, b"the recorded image\n")
    other = _tiny_image(engine, cleanup, b"another image " + bytes(tmp_path.name, "utf-8") + b"\n")
    save = b"".join(engine.save(other["Id"]))
    image_members = []
    with tarfile.open(fileobj=io.BytesIO(save)) as tar:
        for info in tar:
            src = tar.extractfile(info) if info.isfile() else None
            image_members.append(
                Member(f"image/{info.name}", src.read() if src else b"", info.type)
            )
    run_json = json.dumps(
        {"run_id": "20260101-000000-00000000", "image": {"id": recorded["Id"]}}
    ).encode()
    crafted = Crafted(
        [Member("run/run.json", run_json), *image_members],
        image={"id": recorded["Id"], "diff_ids": recorded["RootFS"]["Layers"]},
    )
    bundle = crafted.write(tmp_path / "swapped.reprise")
    if not present:
        engine.remove_image(recorded["Id"], force=True)
        engine.remove_image(other["Id"], force=True)
    runs = tmp_path / "runs"
    result = CliRunner().invoke(cli, ["bundle", "import", str(bundle), "--runs-dir", str(runs)])
    assert result.exit_code == 2, result.stderr
    assert (
        f"the bundle's image is {other['Id']}, not the recorded {recorded['Id']}" in result.stderr
    )
    assert not any(runs.rglob("run.json"))
    if not present:
        assert engine.image_attrs(other["Id"]) is None  # what the failed import loaded is gone


def test_header_and_record_disagree_on_the_image(
    exported: tuple[Path, Path, dict[str, Any]], tmp_path: Path
) -> None:
    path, _, _ = exported
    header, members = read_members(path)
    for m in members:
        if m.name == "run/run.json":
            record = json.loads(m.data)
            record["image"]["id"] = "sha256:" + "9" * 64
            m.data = json.dumps(record).encode()
    small = [m for m in members if not m.name.startswith("image/")]
    crafted = Crafted(small, image=header.image, run_id=header.run_id, experiment=header.experiment)
    bundle = crafted.write(tmp_path / "disagree.reprise")
    result = CliRunner().invoke(
        cli, ["bundle", "import", str(bundle), "--runs-dir", str(tmp_path / "runs")]
    )
    assert result.exit_code == 2
    assert "but its run was made with sha256:9999" in result.stderr


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ("altered", "run/checkpoints/final.pt is not the file named in the run's manifest"),
        ("added", "run/outputs/planted.txt is not in the run's manifest"),
        ("rewritten", "run/manifest.json is not the manifest run.json names"),
    ],
)
def test_outputs_that_are_not_the_manifests_are_refused(
    exported: tuple[Path, Path, dict[str, Any]], tmp_path: Path, change: str, message: str
) -> None:
    """The index is the bundle's own word: an author who altered an output and indexed it
    anew is caught by the run's manifest, which the outputs must match; one who made the
    manifest anew too, by the manifest's hash in run.json."""
    path, _, _ = exported
    header, members = read_members(path)
    kept = [m for m in members if not m.name.startswith("image/")]  # the engine has it
    if change in ("altered", "rewritten"):
        for m in kept:
            if m.name == "run/checkpoints/final.pt":
                m.data = m.data[:-1] + bytes([m.data[-1] ^ 1])
                altered = m.data
        for m in kept:  # and a manifest made anew to match it: run.json still names the old
            if change == "rewritten" and m.name == "run/manifest.json":
                manifest = json.loads(m.data)
                for entry in manifest["files"]:
                    if entry["path"] == "checkpoints/final.pt":
                        entry["hash"] = blake3.blake3(altered).hexdigest()
                m.data = json.dumps(manifest).encode()
    else:
        kept.append(Member("run/outputs/planted.txt", b"not the job's\n"))
    crafted = Crafted(kept, image=header.image, run_id=header.run_id, experiment=header.experiment)
    bundle = crafted.write(tmp_path / f"{change}.reprise")
    runs = tmp_path / "runs"
    result = CliRunner().invoke(cli, ["bundle", "import", str(bundle), "--runs-dir", str(runs)])
    assert result.exit_code == 2, result.stderr
    assert message in result.stderr and "Traceback" not in result.stderr
    assert not any(runs.rglob("run.json")) and not list(runs.glob(".import-*"))
