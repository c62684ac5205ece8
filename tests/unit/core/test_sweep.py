"""Sweep overrides in Hydra's multirun grammar, expanded to one override list per run."""

from __future__ import annotations

import pytest

from reprise.core import sweep
from reprise.core.config import parse_override
from reprise.core.errors import ConfigError, UsageError


def test_comma_lists_expand_to_their_product_first_key_slowest() -> None:
    assert sweep.expand(["optim.lr=0.01,0.1", "seed=1,2,3", "model.width=4"]) == [
        ("optim.lr=0.01", "seed=1", "model.width=4"),
        ("optim.lr=0.01", "seed=2", "model.width=4"),
        ("optim.lr=0.01", "seed=3", "model.width=4"),
        ("optim.lr=0.1", "seed=1", "model.width=4"),
        ("optim.lr=0.1", "seed=2", "model.width=4"),
        ("optim.lr=0.1", "seed=3", "model.width=4"),
    ]


def test_range_is_pythons_range_of_integers_or_numbers() -> None:
    assert sweep.parse_sweep_override("seed=range(3)").values == ("0", "1", "2")
    assert sweep.parse_sweep_override("seed=range(1,7,2)").values == ("1", "3", "5")
    assert sweep.parse_sweep_override("seed=range(5, 2, -1)").values == ("5", "4", "3")
    assert sweep.parse_sweep_override("lr=range(0.1,0.4,0.1)").values == ("0.1", "0.2", "0.3")
    with pytest.raises(UsageError, match="gives no values"):
        sweep.parse_sweep_override("seed=range(3,3)")


def test_choice_quotes_brackets_and_escapes_keep_their_commas() -> None:
    assert sweep.parse_sweep_override("opt=choice(adam,sgd)").values == ("adam", "sgd")
    assert sweep.parse_sweep_override("+tag='a,b',c").values == ("'a,b'", "c")
    assert sweep.parse_sweep_override("sizes=[1,2],[3,4]").values == ("[1,2]", "[3,4]")
    assert sweep.parse_sweep_override(r"name=a\,b,c").values == ("a,b", "c")
    swept = sweep.expand(["+tag='a,b',c"])
    assert [parse_override(o).value for (o,) in swept] == ["a,b", "c"]
    assert parse_override(swept[0][0]).add


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("lr=interval(0,1)", "interval\\(\\) sweeps are not supported"),
        ("lr=glob(*)", "glob\\(\\) sweeps are not supported"),
        ("lr=0.1,,0.2", "empty value"),
        ("lr=[1,2", "unterminated"),
        ("lr=1,2]", "unbalanced"),
        ("lr", "not KEY=VALUES"),
        ("seed=range(1,5,0)", "step must not be 0"),
        ("seed=range(a,5)", "takes numbers"),
        ("seed=range(1,2,3,4)", "1 to 3 numbers"),
        ("seed=range(100000)", "at most 1000 runs"),
    ],
)
def test_what_the_grammar_refuses_is_a_usage_error(override: str, message: str) -> None:
    with pytest.raises(UsageError, match=message):
        sweep.expand([override])


def test_a_malformed_key_is_the_config_error_a_single_override_gives() -> None:
    with pytest.raises(ConfigError, match="malformed key"):
        sweep.expand(["a..b=1,2"])


def test_the_same_key_twice_or_too_many_runs_is_refused() -> None:
    with pytest.raises(UsageError, match="sets lr more than once"):
        sweep.expand(["lr=1,2", "+lr=3"])
    with pytest.raises(UsageError, match="would start 1024 runs"):
        sweep.expand([f"k{i}=0,1" for i in range(10)])


def test_varying_and_label_name_only_the_swept_keys() -> None:
    overrides = ["optim.lr=0.01,0.1", "model.width=4", "+seed=1,2"]
    assert sweep.varying(overrides) == ["optim.lr", "seed"]
    assert sweep.label(("optim.lr=0.1", "model.width=4", "+seed=2"), ["optim.lr", "seed"]) == (
        "optim.lr=0.1 +seed=2"
    )


def test_an_empty_value_is_one_value_and_seed_flag_meets_no_swept_seed() -> None:
    assert sweep.expand(["+note=", "lr=1,2"]) == [("+note=", "lr=1"), ("+note=", "lr=2")]
    with pytest.raises(UsageError, match="--seed would give every run"):
        sweep.expand(["seed=1,2"], seed_flag=True)
    assert sweep.expand(["seed=3", "lr=1,2"], seed_flag=True) == [
        ("seed=3", "lr=1"),
        ("seed=3", "lr=2"),
    ]
