"""Bundles and records written by an attacker: nothing they say becomes a path outside the runs
directory, a tag, a retag, an untag, a host path to read, or a container to stop; every size
is bounded before memory is spent."""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path
from typing import Any

import pytest
import zstandard

from reprise.commands import build as builder
from reprise.core.bundleformat import HEADER_NAME
from reprise.edges.container_config import ContainerSpec
from reprise.edges.docker import Engine

from ..bundlecraft import Crafted, Member
from ..recordcraft import valid_record, write_run
from .conftest import Host, run_cli, run_measured

ZERO_ID = "sha256:" + "0" * 64


def _import(bundle: Path, host: Host) -> tuple[int, str]:
    code, _, err = run_cli("bundle", "import", str(bundle), "--runs-dir", str(host.runs))
    assert "Traceback" not in err, err
    return code, err


def _record(**changes: Any) -> bytes:
    base = {
        "run_id": "20260101-000000-000000-00000000",
        "experiment": "exp",
        "image": {"id": ZERO_ID},
    }
    return json.dumps(valid_record(**{**base, **changes})).encode()


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("run_id", "../../../.ssh", "the bundle's run id '../../../.ssh' is not a valid run id"),
        (
            "experiment",
            "../../x",
            "the bundle's experiment '../../x' is not a valid experiment name",
        ),
        ("experiment", "/abs", "the bundle's experiment '/abs' is not a valid experiment name"),
        ("run_id", "..", "the bundle's run id '..' is not a valid run id"),
    ],
)
def test_header_names_that_leave_the_runs_dir_are_refused(
    host: Host, tmp_path: Path, field: str, value: str, message: str
) -> None:
    crafted = Crafted([Member("run/run.json", _record()), Member("code/train.py", b"1\n")])
    setattr(crafted, field, value)
    code, err = _import(crafted.write(tmp_path / "b.reprise"), host)
    assert code == 2 and message in err, err
    assert not any(host.runs.iterdir())


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"code": {**valid_record()["code"], "commit": "../../../.ssh"}}, "code.commit"),
        ({"code": {**valid_record()["code"], "subdir": "../../../.ssh"}}, "code.subdir"),
        ({"data": {"../../x": {"hash": "sha256:" + "0" * 64}}}, "data"),
    ],
)
def test_record_names_that_would_become_paths_are_refused(
    host: Host, tmp_path: Path, changes: dict[str, Any], field: str
) -> None:
    members = [
        Member("run/run.json", _record(**changes)),
        Member("code/authorized_keys", b"ssh-ed25519 EVIL\n"),
    ]
    code, err = _import(
        Crafted(
            members, image={"id": ZERO_ID, "diff_ids": []}, run_id="20260101-000000-000000-00000000"
        ).write(tmp_path / "b.reprise"),
        host,
    )
    assert code == 2 and "is not a valid run record" in err and field.split(".")[-1] in err, err
    assert not any(host.runs.iterdir())


def test_a_running_record_is_not_imported(host: Host, tmp_path: Path) -> None:
    members = [Member("run/run.json", _record(status="running", container={"id": "a" * 64}))]
    crafted = Crafted(members, run_id="20260101-000000-000000-00000000")
    code, err = _import(crafted.write(tmp_path / "b.reprise"), host)
    assert code == 2 and "only finished runs are bundled" in err, err


def _tiny_image(engine: Engine, content: bytes) -> dict[str, Any]:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        info = tarfile.TarInfo("hello.txt")
        info.size = len(content)
        tar.addfile(info, io.BytesIO(content))
    out = engine._client.api.import_image_from_data(buf.getvalue())
    attrs = engine.image_attrs(json.loads(out.strip().splitlines()[-1])["status"])
    assert attrs is not None
    return attrs


def _image_members(engine: Engine, image_id: str, repo_tags: list[str]) -> list[Member]:
    """`docker save` of the image, its manifest.json (and `repositories`) naming ``repo_tags``."""
    members = []
    with tarfile.open(fileobj=io.BytesIO(b"".join(engine.save(image_id)))) as tar:
        for info in tar:
            data = tar.extractfile(info).read() if info.isfile() else b""  # type: ignore[union-attr]
            if info.name == "manifest.json":
                manifest = json.loads(data)
                manifest[0]["RepoTags"] = repo_tags
                data = json.dumps(manifest).encode()
            members.append(Member(f"image/{info.name}", data, info.type))
    repo, tag = repo_tags[0].split(":")
    members.append(Member("image/repositories", json.dumps({repo: {tag: image_id[7:]}}).encode()))
    return members


@pytest.mark.parametrize("proven", [True, False])
def test_archive_tags_never_move_or_vanish(
    engine: Engine, image: builder.BuildResult, host: Host, tmp_path: Path, proven: bool
) -> None:
    """The archive names the example project's own tag. Proven or refused, the import applies
    none of it: the victim tag keeps its image, and nothing but reprise/imports:<run> is made."""
    victim = image.plan.tag
    tiny = _tiny_image(engine, f"evil {tmp_path.name}\n".encode())
    run_id = "20260101-000000-000000-0000abcd"
    recorded = tiny["Id"] if proven else ZERO_ID
    members = [
        Member("run/run.json", _record(run_id=run_id, image={"id": recorded, "tag": victim})),
        *_image_members(engine, tiny["Id"], [victim]),
    ]
    crafted = Crafted(
        members, image={"id": recorded, "diff_ids": tiny["RootFS"]["Layers"]}, run_id=run_id
    )
    bundle = crafted.write(tmp_path / "tags.reprise")
    engine.remove_image(tiny["Id"], force=True)
    code, err = _import(bundle, host)
    try:
        assert engine.image_attrs(victim)["Id"] == image.image_id  # type: ignore[index]
        if proven:
            assert code == 0, err
            loaded = engine.image_attrs(tiny["Id"])
            assert loaded is not None and loaded["RepoTags"] == [f"reprise/imports:{run_id}"]
        else:
            assert code == 2 and f"the bundle's image is {tiny['Id']}, not the recorded" in err
            assert engine.image_attrs(tiny["Id"]) is None
    finally:
        engine.remove_image(tiny["Id"], force=True)


def test_a_recorded_data_path_is_never_read_without_being_named(
    image: builder.BuildResult, host: Host
) -> None:
    record = valid_record(
        image={"id": image.image_id, "tag": image.plan.tag},
        data={
            "train": {
                "path": str(host.root / "etc"),
                "hash": "sha256:" + "d" * 64,
                "files": 2,
                "bytes": 1,
            }
        },
        manifest={"algorithm": "blake3", "files": 0, "hash": "sha256:" + "0" * 64},
    )
    run = write_run(host.runs, record)
    (run / "manifest.json").write_text('{"algorithm": "blake3", "files": []}\n')
    (run / "config.yaml").write_text("{}\n")
    for extra in ((), ("--allow-data-change",)):
        code, _, err = run_cli("reproduce", str(run), "--runs-dir", str(host.runs), *extra)
        assert code == 2, err
        assert "no path here is named for them" in err and "--data NAME=PATH" in err


def test_a_record_cannot_make_reprise_remove_someone_elses_container(
    engine: Engine, image: builder.BuildResult, host: Host
) -> None:
    victim = engine.create(
        ContainerSpec(
            image=image.image_id,
            command=["true"],
            environment={},
            mounts=[],
            working_dir="/",
            user="1000:1000",
            labels={},
        )
    )
    try:
        record = valid_record(status="running", container={"id": victim})
        run = write_run(host.runs, record)
        code, _, err = run_cli("ls", "--runs-dir", str(host.runs), "--json")
        assert code == 0, err
        assert engine.inspect_container(victim) is not None  # neither stopped nor removed
        after = json.loads((run / "run.json").read_text())
        assert after["status"] == "lost" and "no longer exists" in after["reason"]
    finally:
        engine.remove_container(victim)


def _pax_bomb(path: Path, size: int) -> Path:
    """A header block declaring a PAX record of ``size`` bytes, then that many zeros: tiny
    once compressed."""
    info = tarfile.TarInfo("././@PaxHeader")
    info.type = tarfile.XHDTYPE
    info.size = size
    with path.open("wb") as fh, zstandard.ZstdCompressor(level=1).stream_writer(fh) as zw:
        zw.write(info.tobuf(tarfile.USTAR_FORMAT))
        block = b"\0" * (1 << 20)
        for _ in range(size // len(block)):
            zw.write(block)
        zw.write(b"\0" * 1024)
    return path


def test_a_2_gib_pax_header_is_refused_before_it_is_read(host: Host, tmp_path: Path) -> None:
    bomb = _pax_bomb(tmp_path / "bomb.reprise", 2 << 30)
    assert bomb.stat().st_size < 1 << 20
    for args in (
        ("bundle", "inspect", str(bomb)),
        ("bundle", "import", str(bomb), "--runs-dir", str(host.runs)),
    ):
        code, err, peak = run_measured(*args)
        assert code == 2, err
        assert "an extended tar header of 2147483648 bytes (limit 65536)" in err
        assert peak < 200, f"{args[1]} peaked at {peak:.0f} MiB"


def test_a_deeply_nested_or_huge_header_is_refused(host: Host, tmp_path: Path) -> None:
    for name, body in (("deep", b"[" * 200_000), ("huge", b" " * (33 << 20))):
        raw = io.BytesIO()
        raw.write(Member(HEADER_NAME, body).encode())
        raw.write(b"\0" * 1024)
        bundle = tmp_path / f"{name}.reprise"
        bundle.write_bytes(zstandard.ZstdCompressor().compress(raw.getvalue()))
        code, err, peak = run_measured("bundle", "inspect", str(bundle))
        assert code == 2, err
        assert (
            ("nested too deeply" in err) if name == "deep" else ("not a file of sane size" in err)
        ), err
        assert "Traceback" not in err and peak < 200


def test_a_manifest_naming_paths_outside_the_run_is_refused(host: Host, tmp_path: Path) -> None:
    manifest = {
        "algorithm": "blake3",
        "files": [{"path": "../../etc/secret.json", "size": 1, "hash": "0" * 64}],
    }
    members = [
        Member("run/run.json", _record()),
        Member("run/manifest.json", json.dumps(manifest).encode()),
    ]
    crafted = Crafted(members, run_id="20260101-000000-000000-00000000")
    code, err = _import(crafted.write(tmp_path / "m.reprise"), host)
    assert code == 2 and "run/manifest.json is not a valid manifest" in err, err
    assert "'../../etc/secret.json' is not a relative path" in err
    assert not any(host.runs.iterdir())


def test_a_git_folder_in_the_code_is_refused_before_git_could_run_its_commands(
    host: Host, tmp_path: Path
) -> None:
    """A planted .git (config naming a filter command) and .gitattributes: `git apply` of a
    dirty run's patch would have run the command as the importing user (root)."""
    pwned = tmp_path / "PWNED"
    config = f"[filter \"x\"]\n\tclean = sh -c 'id > {pwned}; cat'\n".encode()
    for git in (".git", ".GIT", "sub/.git"):
        crafted = Crafted(
            [
                Member("run/run.json", _record()),
                Member("code/.gitattributes", b"* filter=x\n"),
                Member(f"code/{git}/config", config),
                Member(f"code/{git}/HEAD", b"ref: refs/heads/main\n"),
            ]
        )
        code, err = _import(crafted.write(tmp_path / "git.reprise"), host)
        assert code == 2 and "is inside a .git folder" in err, err
        assert not pwned.exists() and not (host.runs / ".cache").exists()


def test_a_dirty_run_without_its_patch_or_with_another_is_refused(
    host: Host, tmp_path: Path
) -> None:
    dirty = {**valid_record()["code"], "dirty": True, "patch_hash": "sha256:" + "1" * 64}
    for extra, message in (
        ([], "the bundle has no run/code.patch"),
        ([Member("run/code.patch", b"--- a\n+++ b\n")], "is not the patch run.json names"),
    ):
        members = [Member("run/run.json", _record(code=dirty)), *extra]
        members.append(Member("code/train.py", b"1\n"))
        crafted = Crafted(members, run_id="20260101-000000-000000-00000000")
        code, err = _import(crafted.write(tmp_path / "dirty.reprise"), host)
        assert code == 2 and message in err, err
        assert not (host.runs / ".cache").exists()


def test_a_chain_of_extended_headers_or_a_flood_of_them_stays_bounded(
    host: Host, tmp_path: Path
) -> None:
    """1,500 PAX headers in a row overflowed tarfile's recursion (exit 70); 20,000 members
    each with a 60 KB PAX comment were all kept in memory (1.9 GB for a 374 KB bundle)."""
    chain = io.BytesIO()
    for _ in range(1500):
        info = tarfile.TarInfo("x")
        info.type = tarfile.XHDTYPE
        body = b"12 comment=\n"
        info.size = len(body)
        chain.write(info.tobuf(tarfile.USTAR_FORMAT) + body + b"\0" * (512 - len(body)))
    chain.write(Member(HEADER_NAME, b"{}").encode())
    chain.write(b"\0" * 1024)
    bundle = tmp_path / "chain.reprise"
    bundle.write_bytes(zstandard.ZstdCompressor().compress(chain.getvalue()))
    code, err = _import(bundle, host)
    assert code == 2 and "extended headers in a row" in err, err

    flood = [Member("run/run.json", _record())]
    comment = {"comment": "c" * 60_000}
    flood += [Member(f"run/outputs/d{i}", type=tarfile.DIRTYPE, pax=comment) for i in range(20_000)]
    bundle = Crafted(flood).write(tmp_path / "flood.reprise")
    _, err, peak = run_measured("bundle", "import", str(bundle), "--runs-dir", str(host.runs))
    assert "Traceback" not in err
    assert peak < 400, f"import peaked at {peak:.0f} MiB"


def test_a_run_dated_in_the_future_cannot_become_every_later_latest(
    host: Host, tmp_path: Path
) -> None:
    future = "99991231-235959-999999-ffffffff"
    members = [Member("run/run.json", _record(run_id=future)), Member("code/train.py", b"1\n")]
    code, err = _import(Crafted(members, run_id=future).write(tmp_path / "f.reprise"), host)
    assert code == 2 and "is dated in the future" in err, err
    assert not (host.runs / "exp").exists()
