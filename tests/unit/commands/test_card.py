"""The model card: whole cards against golden files, [tool.reprise.card], templates that extend
reprise's, template errors before training, and the training-curve figure read back."""

from __future__ import annotations

import io
import json
import math
from pathlib import Path

import pytest
from click.testing import CliRunner
from PIL import Image

from reprise.cli import cli
from reprise.commands.card import check_template, write_card
from reprise.core.card import format_duration
from reprise.core.cardsettings import CardSettings, parse_card
from reprise.core.errors import CardTemplateError, SettingsError
from reprise.core.plot import MAX_PANELS, family, plot_series, wants_log

from ...cardcraft import RERUN_ID, RUN_ID, card_run
from ..golden import check_golden

CARD = CardSettings(
    license="apache-2.0",
    library_name="pytorch",
    tags=("tabular", "spiral"),
    datasets=("lab/spirals",),
    metrics=("accuracy",),
    intended_use="Classifying points of the two-spiral toy problem; a teaching model.",
    limitations="Trained on 2-D synthetic data only: says nothing about real inputs.",
    evaluation="Validation split of 1,000 points, held out by seed.",
)


def test_golden_model_card(tmp_path: Path) -> None:
    run = card_run(tmp_path)
    text = write_card(run, card=CARD).read_text()
    check_golden("model_card.md", text)
    assert text.startswith("---\nlicense: apache-2.0\nlibrary_name: pytorch\n")
    assert "reprise reproduce 20261123-140000-00000000 --registry 127.0.0.1:5000/team" in text
    assert (run / "training_curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_golden_failed_rerun_card(tmp_path: Path) -> None:
    run = card_run(
        tmp_path,
        RERUN_ID,
        status="failed",
        exit_code=1,
        reason="the job exited with code 1",
        reproduces=RUN_ID,
        reproductions=[],
        duration_s=42.4,
    )
    text = write_card(run).read_text()
    check_golden("model_card.failed-rerun.md", text)
    assert "Reproduce it" not in text and "reprise reproduce" not in text
    assert f"This run reproduces run {RUN_ID}" in text
    assert "(42s)" in text and "nothing to reproduce" in text


def test_card_without_metrics_or_checkpoints(tmp_path: Path) -> None:
    run = card_run(tmp_path, metrics="", reproductions=[], data={})
    (run / "manifest.json").unlink()
    text = write_card(run).read_text()
    assert "Not reproduced yet." in text and "No metrics were logged" in text
    assert "The run saved no checkpoint" in text and "metrics:" not in text
    assert text.startswith("---\ntags:\n- reprise\n---\n")
    assert not (run / "training_curves.png").exists()


def test_durations_have_one_format() -> None:
    assert [format_duration(s) for s in (None, 0, 42.4, 330, 3723)] == [
        "unknown duration",
        "0s",
        "42s",
        "5m 30s",
        "1h 02m 03s",
    ]


def test_user_template_extends_the_default_and_overrides_blocks(tmp_path: Path) -> None:
    run = card_run(tmp_path)
    template = tmp_path / "mine.md.j2"
    template.write_text(
        '{% extends "model_card.md.j2" %}\n'
        "{% block limitations %}## Limitations\n\nOnly spirals.\n{% endblock %}\n"
        "{% block environment %}{{ super() }}- Lab: B12\n{% endblock %}\n"
    )
    result = CliRunner().invoke(
        cli,
        ["card", run.name, "--runs-dir", str(tmp_path), "--template", str(template)],
        catch_exceptions=False,
    )
    assert result.exit_code == 0, result.stderr
    text = (run / "model_card.md").read_text()
    assert (
        "## Limitations\n\nOnly spirals.\n" in text and "Not stated: set `limitations`" not in text
    )
    assert "- Docker engine 28.2.2\n- Lab: B12\n" in text
    assert "## Intended use" in text and "## How to load the checkpoint" in text


@pytest.mark.parametrize(
    ("body", "line", "words"),
    [
        ("# card\n\n{% if %}\n", 3, "Expected an expression"),
        ("# card\n{{ run_id }}\n{{ no_such_thing }}\n", 3, "'no_such_thing' is undefined"),
        (
            '{% extends "model_card.md.j2" %}\n{% block title %}{{ nope.x }}{% endblock %}\n',
            2,
            "'nope' is undefined",
        ),
    ],
)
def test_template_errors_exit_2_with_the_line(
    tmp_path: Path, body: str, line: int, words: str
) -> None:
    run = card_run(tmp_path)
    template = tmp_path / "bad.md.j2"
    template.write_text(body)
    result = CliRunner().invoke(
        cli, ["card", run.name, "--runs-dir", str(tmp_path), "--template", str(template)]
    )
    assert result.exit_code == 2, result.output
    assert f"{template}, line {line}" in result.stderr and words in result.stderr
    assert "Traceback" not in result.output
    # The same check runs at `run` preparation, before any image is built or job started.
    with pytest.raises(CardTemplateError) as caught:
        check_template(CardSettings(template=template))
    assert caught.value.line == line and caught.value.exit_code == 2


def test_good_template_passes_the_preparation_check(tmp_path: Path) -> None:
    template = tmp_path / "ok.md.j2"
    template.write_text('{% extends "model_card.md.j2" %}{% block title %}# M{% endblock %}')
    check_template(CardSettings(template=template))
    check_template(None)


def test_card_settings_parse_and_refuse(tmp_path: Path) -> None:
    parsed = parse_card(
        {"license": "mit", "tags": ["a", "b"], "how-to-load": "  Use `torch.load`.  "},
        None,
        resolve=lambda key, value: tmp_path / value,
    )
    assert parsed.license == "mit" and parsed.tags == ("a", "b")
    assert parsed.how_to_load == "Use `torch.load`."
    with_template = parse_card({"template": "t.j2"}, None, resolve=lambda k, v: tmp_path / v)
    assert with_template.template == tmp_path / "t.j2"
    for bad in ({"licence": "mit"}, {"tags": "a"}, {"license": "two words"}, {"limitations": ""}):
        with pytest.raises(SettingsError):
            parse_card(bad, None)


def test_metric_families_and_log_scale() -> None:
    assert [family(n) for n in ("train_loss", "val/loss", "eval.acc", "lr", "train")] == [
        "loss",
        "loss",
        "acc",
        "lr",
        "train",
    ]
    assert wants_log([[(0, 2.0), (1, 0.01)]]) and not wants_log([[(0, 0.9), (1, 0.5)]])
    assert not wants_log([[(0, 1.0), (1, -1.0)]])


def _panel_has_ink(image: Image.Image, box: tuple[int, int, int, int]) -> bool:
    """Coloured (not grey) pixels inside the panel's axes: a curve was drawn there."""
    data = image.crop(box).tobytes()
    pixels = (data[i : i + 3] for i in range(0, len(data), 3))
    return any(max(p) - min(p) > 60 for p in pixels)


def test_figure_reads_back_with_a_curve_in_every_panel() -> None:
    curves = {
        "train_loss": [(float(s), 2.0 * math.exp(-s / 20)) for s in range(1, 200)],
        "val_loss": [(float(s), 2.2 * math.exp(-s / 25)) for s in range(10, 200, 10)],
        "val_acc": [(float(s), 1 - math.exp(-s / 40)) for s in range(10, 200, 10)],
        "lr": [(float(s), 0.1) for s in range(1, 200)],
    }
    figure = plot_series(curves)
    assert figure is not None
    again = plot_series(dict(reversed(curves.items())))
    assert again is not None and again.png == figure.png  # deterministic
    image = Image.open(io.BytesIO(figure.png)).convert("RGB")
    assert image.size == (figure.width, figure.height) == (1000, 680)
    assert [(p.family, p.names, p.log) for p in figure.panels] == [
        ("loss", ("train_loss", "val_loss"), True),
        ("acc", ("val_acc",), False),
        ("lr", ("lr",), False),
    ]
    for panel in figure.panels:
        assert _panel_has_ink(image, panel.box), panel
    assert b"Software" not in figure.png and b"Matplotlib" not in figure.png


def test_figure_is_bounded_against_a_flood_of_metrics() -> None:
    flood = {f"m{i}_x{i}": [(0.0, 1.0), (1.0, 2.0)] for i in range(50)}
    flood["nan_only"] = [(0.0, math.nan)]
    figure = plot_series(flood)
    assert figure is not None and len(figure.panels) == MAX_PANELS
    assert len(figure.omitted) == 50 - MAX_PANELS and "nan_only" not in figure.omitted
    assert plot_series({"nan_only": [(0.0, math.inf)]}) is None


def test_card_names_metrics_left_out_of_the_figure(tmp_path: Path) -> None:
    lines = [json.dumps({"step": s, **{f"k{i}_m{i}": s * i for i in range(10)}}) for s in (1, 2)]
    run = card_run(tmp_path, metrics="\n".join(lines) + "\n")
    text = write_card(run).read_text()
    assert "Not in the figure (past its 8 panels): k8_m8, k9_m9." in text


def test_project_settings_carry_the_card_table(tmp_path: Path) -> None:
    from reprise.core.settings import load_settings

    def settings(table: dict[str, object], environ: dict[str, str] | None = None) -> CardSettings:
        pyproject = {
            "project": {"name": "p"},
            "tool": {"reprise": {"command": "python t.py", **table}},
        }
        return load_settings(tmp_path, pyproject, environ or {}).card

    card = settings({"card": {"license": "mit", "template": "card.md.j2"}})
    assert card.license == "mit" and card.template == tmp_path / "card.md.j2"
    assert settings({"card-template": "old.j2"}).template == tmp_path / "old.j2"
    assert settings({}, {"REPRISE_CARD_TEMPLATE": "/x.j2"}).template == Path("/x.j2")
    with pytest.raises(SettingsError, match=r"unknown \[tool.reprise.card\] key"):
        settings({"card": {"intended_use": "x"}})


def test_figure_takes_hostile_metric_names_and_values_as_plain_text() -> None:
    curves = {
        "$\\frac{$": [(0.0, 1.0), (1.0, 2.0)],  # mathtext would raise on it
        "_hidden_loss": [(0.0, 1e-300), (1e300, 1e300)],
        "x" * 500: [(0.0, -1.0), (1.0, 1.0)],
    }
    figure = plot_series(curves)
    assert figure is not None and len(figure.png) > 1000
    image = Image.open(io.BytesIO(figure.png)).convert("RGB")
    assert all(_panel_has_ink(image, p.box) for p in figure.panels)


def test_run_refuses_a_broken_card_template_before_any_engine(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from ...projects import init_repo, tiny_project

    root = tiny_project(
        tmp_path / "proj", extra_tool='[tool.reprise.card]\ntemplate = "card.md.j2"'
    )
    (root / "card.md.j2").write_text(
        '{% extends "model_card.md.j2" %}\n{% block title %}{{ oops }}'
    )
    init_repo(root)
    monkeypatch.setenv("DOCKER_HOST", "unix:///nonexistent/docker.sock")  # never reached
    result = CliRunner().invoke(cli, ["--project", str(root), "run"])
    assert result.exit_code == 2, result.output
    assert f"card template {root / 'card.md.j2'}, line 2:" in result.stderr
    assert not list((root / "runs").rglob("run.json"))


def test_labels_are_plain_bounded_text() -> None:
    from reprise.core.plot import MAX_LABEL, _label

    assert _label("$x^2$") == "\\$x^2\\$" and _label("_loss") == " _loss"
    assert len(_label("y" * 500)) == MAX_LABEL


def test_only_plainly_named_checkpoints_reach_the_card() -> None:
    from reprise.core.card import checkpoints

    named = ["outputs/a`b.pt", 'outputs/q"uote.pt', "outputs/new\nline.pt", "outputs/w.pt"]
    assert checkpoints([*named, "checkpoints/last.pt", "logs/x.txt"]) == [
        "checkpoints/last.pt",
        "outputs/w.pt",
    ]


def test_hostile_metrics_neither_break_the_card_nor_write_markdown_into_it(tmp_path: Path) -> None:
    hostile = "".join(
        [
            "[" * 100_000 + "\n",  # deeper than the parser's recursion
            json.dumps({"step": 1, "huge": 10**400, "loss": 1.0}) + "\n",  # past a float
            json.dumps({"step": 1, "x\n\n## Reproduced <img src=x onerror=alert(1)> |": 2.0})
            + "\n",
            json.dumps({"step": 2, "loss": 0.5}) + "\n",
        ]
    )
    run = card_run(tmp_path, metrics=hostile)
    card = write_card(run).read_text()
    assert "| loss |" in card
    assert "huge" not in card  # not a number a float can hold: not a metric
    assert "<img" not in card and "\n## Reproduced" not in card
    assert "| x____ Reproduced _img src=x onerror=alert_1__ _ |" in card
