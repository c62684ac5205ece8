"""Fixtures for tests against the real Docker engine and the local registry.

`make test` brings both up first (docker/engine.sh) and exports REPRISE_BASE_IMAGE. Run
directly without an engine, these tests are skipped, unless REPRISE_REQUIRE_ENGINE=1 (as
`make test` sets), in which case a missing engine is an error.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from reprise.engine import Engine
from reprise.errors import EngineError


@pytest.fixture(scope="session")
def engine() -> Engine:
    try:
        return Engine.from_env()
    except EngineError as exc:
        if os.environ.get("REPRISE_REQUIRE_ENGINE") == "1":
            pytest.fail(f"no Docker engine: {exc.render()}")
        pytest.skip("no Docker engine (run `make engine`)")


@pytest.fixture(scope="session")
def base_image(engine: Engine) -> str:
    ref = os.environ.get("REPRISE_BASE_IMAGE")
    if not ref:
        pytest.fail("REPRISE_BASE_IMAGE is not set: run the tests through `make test`")
    return ref


class Cleanup:
    """Remembers what a test made in the engine and removes it afterwards."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.images: list[str] = []
        self.containers: list[str] = []

    def image(self, ref: str) -> str:
        self.images.append(ref)
        return ref

    def container(self, container_id: str) -> str:
        self.containers.append(container_id)
        return container_id

    def run(self) -> None:
        for cid in self.containers:
            self.engine.remove_container(cid)
        for ref in self.images:
            self.engine.remove_image(ref, force=True)


@pytest.fixture()
def cleanup(engine: Engine) -> Iterator[Cleanup]:
    c = Cleanup(engine)
    yield c
    c.run()
