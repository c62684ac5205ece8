"""The in-toto statement beside every run: an SLSA provenance v1 predicate, checked with the
in-toto attestation library's own Statement and the SLSA provenance v1 protobuf schema."""

from __future__ import annotations

import json
from typing import Any

import pytest
from google.protobuf import json_format
from in_toto_attestation.predicates.provenance.v1 import provenance_pb2
from in_toto_attestation.v1.statement import Statement
from in_toto_attestation.v1.statement_pb2 import Statement as StatementProto

from reprise.core.provenance import PREDICATE_TYPE, statement, statement_json

from ...recordcraft import valid_record


def _finished() -> dict[str, Any]:
    record = valid_record()
    record["image"] = {
        **record["image"],
        "tag": "reprise/spiral:0c0397870a8f4be651a3",
        "base_ref": "127.0.0.1:5000/reprise/base@sha256:" + "4" * 64,
        "base_digest": "sha256:" + "4" * 64,
        "lock_hash": "sha256:" + "5" * 64,
        "dockerfile_hash": "sha256:" + "6" * 64,
        "repo_digest": "127.0.0.1:5000/t/reprise/spiral@sha256:" + "7" * 64,
    }
    record.update(
        status="succeeded",
        started_at="2026-11-30T09:00:00.000Z",
        finished_at="2026-11-30T09:01:00.000Z",
        manifest={
            "hash": "sha256:" + "8" * 64,
            "files": 3,
            "algorithm": "blake3",
            "complete": True,
        },
    )
    return record


def test_the_statement_validates_as_in_toto_v1_with_an_slsa_provenance_v1_predicate() -> None:
    document = json.loads(statement_json(_finished()))
    proto = json_format.ParseDict(document, StatementProto())  # unknown fields raise
    Statement.copy_from_pb(proto).validate()
    assert document["predicateType"] == PREDICATE_TYPE
    predicate = json_format.ParseDict(document["predicate"], provenance_pb2.Provenance())
    assert predicate.build_definition.build_type
    assert predicate.run_details.builder.id
    deps = {
        d.uri or d.name: dict(d.digest) for d in predicate.build_definition.resolved_dependencies
    }
    assert deps["docker://127.0.0.1:5000/reprise/base@sha256:" + "4" * 64] == {"sha256": "4" * 64}
    assert deps["uv.lock"] == {"sha256": "5" * 64}
    assert list(deps["git"].values()) == [_finished()["code"]["commit"]]
    assert document["subject"][0]["digest"] == {"sha256": _finished()["image"]["id"][7:]}


def test_the_statement_is_the_same_for_the_same_record() -> None:
    assert statement_json(_finished()) == statement_json(_finished())


def test_an_unknown_field_in_the_predicate_would_fail_the_schema() -> None:
    document = statement(_finished())
    document["predicate"]["runDetails"]["surprise"] = 1
    with pytest.raises(json_format.ParseError):
        json_format.ParseDict(document["predicate"], provenance_pb2.Provenance())
