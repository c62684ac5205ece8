"""Images by rate of change, for real: a small dependency changes one small layer; a rebuild
with no cache is the recorded image, byte for byte, and `reprise build --verify` says so."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

from click.testing import CliRunner, Result

from reprise.cli import cli
from reprise.commands.layercache import load_layers
from reprise.core.layers import environment_verdict
from reprise.edges.docker import Engine

from ..projects import commit_all, copy_example, init_repo, lock


def _cli(root: Path, *args: str) -> Result:
    return CliRunner().invoke(cli, ["--project", str(root), *args])


def _build(root: Path) -> dict[str, Any]:
    result = _cli(root, "build", "--json")
    assert result.exit_code == 0, result.stderr
    out = dict(json.loads(result.stdout))
    out["layers"] = load_layers(out["id"])
    return out


def _drop(engine: Engine, *refs: str) -> None:
    for ref in refs:
        if engine.image_attrs(ref) is not None:
            engine.remove_image(ref, force=True)


def test_a_small_dependency_moves_one_small_layer_and_a_cold_rebuild_is_the_same_image(
    tmp_path: Path, engine: Engine, base_image: str
) -> None:
    root = copy_example(tmp_path / "spiral")
    init_repo(root)
    first = _build(root)
    names = [layer["name"] for layer in first["layers"]]
    assert names == ["package numpy", "package sympy", "package torch", "environment", "reprise"]
    assert first["layers"][2]["packages"]["torch"].startswith("2.13.0+cpu ")

    pyproject = root / "pyproject.toml"
    pyproject.write_text(
        pyproject.read_text().replace('"numpy>=2.0",', '"numpy>=2.0",\n    "six>=1.16",')
    )
    lock(root, offline=False)
    commit_all(root, "add six")
    second = _build(root)
    changed = [
        a["name"]
        for a, b in zip(first["layers"], second["layers"], strict=True)
        if a["diff_id"] != b["diff_id"]
    ]
    assert changed == ["environment"]  # numpy, sympy, torch and reprise's own: the same bytes
    total = sum(layer["size"] for layer in second["layers"])
    assert second["layers"][3]["size"] < 0.05 * total
    found = environment_verdict(first, second)
    assert found["verdict"] == "differs"
    assert found["proven"].startswith("the first layer that differs is 'environment': packages six")

    done = _cli(root, "run", "--json", "--", "python", "-c", "import six; print(six.__version__)")
    assert done.exit_code == 0, done.stderr
    run_id = json.loads(done.stdout)["run_id"]
    # No image, no build stage, no cached step: a cold rebuild (the first image, which other
    # tests share, stays: it has none of the second's environment layer).
    _drop(engine, second["tag"], f"{second['tag']}-build", f"{first['tag']}-build")
    verified = _cli(root, "build", "--verify", run_id, "--json")
    assert verified.exit_code == 0, verified.stderr
    report = json.loads(verified.stdout)
    assert report["verdict"] == "identical"
    assert report["rebuilt_id"] == report["recorded_id"] == second["id"]
    assert "Step 1/" in verified.stderr and "done in" in verified.stderr  # steps, not the raw log
    for leftover in (second["tag"], f"{second['tag']}-build"):
        subprocess.run(["docker", "rmi", "-f", leftover], capture_output=True, check=False)
