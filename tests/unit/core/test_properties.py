"""Property tests: whatever the input, a result or a clean reprise error, never a crash."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from reprise.core.bundleformat import Header, check_name
from reprise.core.config import apply_overrides, parse_override
from reprise.core.errors import BundleError, ConfigError
from reprise.core.manifest import Entry, Manifest, compare_manifests

KEYS = st.sampled_from(["a", "b", "lr", "optim", "seed", "x_1", "model-size"])
SCALARS = st.one_of(
    st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), st.text(max_size=8)
)
CONFIGS = st.recursive(
    SCALARS, lambda children: st.dictionaries(KEYS, children, max_size=4), max_leaves=12
).filter(lambda c: isinstance(c, dict))


@settings(max_examples=400, deadline=None)
@given(CONFIGS, st.lists(st.text(max_size=30), max_size=4))
def test_overrides_never_crash(config: dict[str, Any], raw: list[str]) -> None:
    try:
        parsed = [parse_override(text) for text in raw]
        result = apply_overrides(config, parsed)
    except ConfigError as exc:
        assert exc.message
        return
    assert isinstance(result, dict)


@settings(max_examples=400, deadline=None)
@given(
    CONFIGS,
    st.lists(st.tuples(st.lists(KEYS, min_size=1, max_size=3), SCALARS, st.booleans()), max_size=4),
)
def test_well_formed_overrides_set_what_they_say(config: dict[str, Any], items: list[Any]) -> None:
    texts = [
        ("+" if add else "") + ".".join(path) + "=" + json.dumps(value)
        for path, value, add in items
    ]
    try:
        result = apply_overrides(config, [parse_override(t) for t in texts])
    except ConfigError:
        return
    if not items:
        assert result == config
        return
    path, value, _ = items[-1]
    if value is None or isinstance(value, bool | int):  # these round-trip exactly through text
        node: Any = result
        for part in path:
            node = node[part]
        # An override keeps the type the config had: an integer given for a float is a float,
        # any scalar given for a string is its text.
        assert node == value or node == json.dumps(value)
        assert type(node) in (type(value), float, str)


PATHS = st.lists(
    st.text(alphabet="abc._-é", min_size=1, max_size=4).filter(lambda s: s not in (".", "..")),
    min_size=1,
    max_size=3,
).map("/".join)
ENTRIES = st.lists(
    st.tuples(PATHS, st.integers(0, 5), st.sampled_from(["1" * 64, "2" * 64, "3" * 64])),
    max_size=8,
)


@settings(max_examples=400, deadline=None)
@given(ENTRIES, ENTRIES, st.sampled_from(["blake3", "sha256"]))
def test_manifest_comparison_partitions_every_path(
    a: list[Any], b: list[Any], algorithm: str
) -> None:
    ma = Manifest(
        "blake3", tuple(Entry(p, s, h) for p, s, h in dict((x[0], x) for x in a).values())
    )
    mb = Manifest(
        algorithm, tuple(Entry(p, s, h) for p, s, h in dict((x[0], x) for x in b).values())
    )
    diff = compare_manifests(ma, mb)
    parts = [set(diff.changed), set(diff.missing), set(diff.extra), set(diff.same)]
    union = set().union(*parts)
    assert union == {e.path for e in ma.files} | {e.path for e in mb.files}
    assert sum(len(p) for p in parts) == len(union)
    assert diff.equal == (not diff.changed and not diff.missing and not diff.extra)
    assert diff.identical == (diff.equal and bool(diff.same))
    assert compare_manifests(ma, ma).identical == bool(ma.files)
    assert compare_manifests(ma, ma).nothing_compared == (not ma.files)
    assert Manifest.from_json(ma.to_json()).by_path() == ma.by_path()


JSONISH = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), st.text(max_size=10)),
    lambda c: st.one_of(
        st.lists(c, max_size=4), st.dictionaries(st.text(max_size=8), c, max_size=5)
    ),
    max_leaves=20,
)


@settings(max_examples=400, deadline=None)
@given(st.one_of(st.binary(max_size=200), JSONISH.map(lambda v: json.dumps(v).encode())))
def test_bundle_header_reader_never_crashes(raw: bytes) -> None:
    try:
        header = Header.parse(raw)
    except BundleError as exc:
        assert exc.message
        return
    assert isinstance(header, Header)


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.fixed_dictionaries(
            {
                "path": st.text(max_size=20),
                "kind": st.sampled_from(["file", "dir", "link"]),
                "size": st.integers(-2, 10),
                "hash": st.one_of(st.none(), st.text(max_size=4)),
            }
        ),
        max_size=5,
    )
)
def test_bundle_index_entries_are_validated(members: list[dict[str, Any]]) -> None:
    raw = json.dumps(
        {
            "format": "reprise-bundle/1",
            "run_id": "r",
            "experiment": "e",
            "image": {"id": "x"},
            "members": members,
        }
    ).encode()
    try:
        header = Header.parse(raw)
    except BundleError:
        return
    for m in header.members:
        assert m.kind in ("file", "dir") and m.size >= 0
        assert check_name(m.path) == m.path
        assert ".." not in m.path.split("/") and not m.path.startswith("/")


@settings(max_examples=500, deadline=None)
@given(st.text(max_size=40))
def test_member_names_are_checked(name: str) -> None:
    try:
        assert check_name(name) == name
    except BundleError:
        return
    assert name.startswith(("run/", "code/", "image/")) or name == "reprise-bundle.json"
