from __future__ import annotations

from typing import Any

import pytest

from reprise.core.config import (
    apply_overrides,
    config_hash,
    dump_config,
    load_config_text,
    load_untrusted_config_text,
    parse_override,
    parse_value,
)
from reprise.core.errors import ConfigError


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("3", 3),
        ("-7", -7),
        ("1_000", 1000),
        ("0.5", 0.5),
        ("1e-3", 1e-3),
        (".25", 0.25),
        ("true", True),
        ("False", False),
        ("null", None),
        ("~", None),
        ("[1, 2.5, x]", [1, 2.5, "x"]),
        ("[[1,2],[3]]", [[1, 2], [3]]),
        ("[]", []),
        ("'3'", "3"),
        ('"true"', "true"),
        ("adam", "adam"),
        ("on", "on"),  # not YAML 1.1's boolean
        ("007", "007"),  # not an int: leading zero
    ],
)
def test_parse_value_types(text: str, expected: object) -> None:
    value = parse_value(text)
    assert value == expected
    assert type(value) is type(expected)


def test_override_sets_existing_nested_key() -> None:
    config: dict[str, Any] = {"optim": {"lr": 0.1, "name": "adam"}, "epochs": 3}
    out = apply_overrides(config, [parse_override("optim.lr=0.01"), parse_override("epochs=5")])
    assert out == {"optim": {"lr": 0.01, "name": "adam"}, "epochs": 5}
    assert config["optim"]["lr"] == 0.1  # input untouched


def test_plus_adds_new_keys_and_parents() -> None:
    out = apply_overrides({"a": 1}, [parse_override("+b.c.d=[1,2]")])
    assert out == {"a": 1, "b": {"c": {"d": [1, 2]}}}


def test_unknown_key_is_an_error_with_a_suggestion() -> None:
    with pytest.raises(ConfigError) as info:
        apply_overrides({"optim": {"lr": 0.1}}, [parse_override("optim.lrr=0.2")])
    assert info.value.key == "optim.lrr"
    assert "unknown config key 'optim.lrr'" in info.value.message
    assert info.value.hint is not None
    assert "optim.lr" in info.value.hint and "+optim.lrr" in info.value.hint


def test_plus_on_existing_key_is_an_error() -> None:
    with pytest.raises(ConfigError, match="already exists"):
        apply_overrides({"a": 1}, [parse_override("+a=2")])


def test_cannot_descend_into_a_scalar() -> None:
    with pytest.raises(ConfigError, match="a is a int, not a mapping"):
        apply_overrides({"a": 1}, [parse_override("a.b=2")])


@pytest.mark.parametrize("bad", ["noequals", "=3", "a..b=1", "a.b c=1", "+=1", "a.=1"])
def test_malformed_overrides(bad: str) -> None:
    with pytest.raises(ConfigError):
        parse_override(bad)


@pytest.mark.parametrize("bad", ["a=[1,2", "a=[1,,2]", "a=['x]"])
def test_malformed_list_values(bad: str) -> None:
    with pytest.raises(ConfigError):
        parse_override(bad)


def test_malformed_yaml_names_line_and_column() -> None:
    with pytest.raises(ConfigError) as info:
        load_config_text("a: 1\nb: [1, 2\nc: 3\n", source="config.yaml")
    assert info.value.message.startswith("config.yaml is not valid YAML at line")


def test_top_level_must_be_a_mapping() -> None:
    with pytest.raises(ConfigError, match="mapping at its top level, not a list"):
        load_config_text("- 1\n- 2\n", source="c.yaml")
    assert load_config_text("", source="c.yaml") == {}


def test_non_string_keys_are_refused() -> None:
    with pytest.raises(ConfigError, match="not a string"):
        load_config_text("a:\n  1: x\n", source="c.yaml")


def test_dump_is_canonical() -> None:
    a = dump_config({"b": 1, "a": {"z": [1, 2], "y": None}})
    b = dump_config({"a": {"y": None, "z": [1, 2]}, "b": 1})
    assert a == b == "a:\n  y: null\n  z:\n  - 1\n  - 2\nb: 1\n"
    assert config_hash(a) == config_hash(b)
    assert config_hash(a) != config_hash(dump_config({"b": 2}))


# What a hostile job may write as its composed config (also used by tests/unit/commands).
DEEP = "a: " + "[" * 50_000 + "]" * 50_000 + "\n"
ALIAS_BOMB = "a: &a [x, x, x, x, x, x, x, x, x, x]\n" + "".join(
    f"{n}: &{n} [{', '.join(['*' + p] * 10)}]\n"
    for p, n in zip("abcdefgh", "bcdefghi", strict=True)
)


@pytest.mark.parametrize("load", [load_config_text, load_untrusted_config_text])
def test_deep_nesting_is_refused_before_it_is_built(load: Any) -> None:
    with pytest.raises(ConfigError, match="nested more than 100 levels deep"):
        load(DEEP, source="c.yaml")
    assert load("a: " + "[" * 99 + "]" * 99 + "\n", source="c.yaml")


def test_anchors_and_aliases_only_in_the_users_own_config() -> None:
    assert load_config_text("a: &x {b: 1}\nc: *x\n", source="c.yaml") == {
        "a": {"b": 1},
        "c": {"b": 1},
    }
    for text in (ALIAS_BOMB, "a: &x 1\n", "a: {b: 1}\nc:\n  <<: *a\n"):
        with pytest.raises(ConfigError, match="anchors or aliases"):
            load_untrusted_config_text(text, source="c.yaml")


def test_node_count_and_size_are_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    from reprise.core import config

    monkeypatch.setattr(config, "MAX_NODES", 10)
    with pytest.raises(ConfigError, match="more than 10 values"):
        load_untrusted_config_text("a: [" + "1, " * 10 + "1]\n", source="c.yaml")
    monkeypatch.setattr(config, "MAX_TEXT", 100)
    with pytest.raises(ConfigError, match="over the 100 limit"):
        load_untrusted_config_text("a: " + "x" * 100, source="c.yaml")


@pytest.mark.parametrize("text", ["a: " + "1" * 5000, "a: !!timestamp 2001-13-40"])
def test_values_python_cannot_build_are_config_errors(text: str) -> None:
    with pytest.raises(ConfigError, match="holds a value YAML cannot read"):
        load_config_text(text, source="c.yaml")


def test_untrusted_values_are_plain_data() -> None:
    assert load_untrusted_config_text("d: 2024-01-01\nb: !!binary aGk=\n", source="c") == {
        "d": "2024-01-01",
        "b": "b'hi'",
    }
