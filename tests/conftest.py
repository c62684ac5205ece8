"""The engine fixtures (tests/engine_fixtures.py) are shared by the integration and
adversarial suites; unit tests never ask for them, so they need no daemon."""

pytest_plugins = ["tests.engine_fixtures"]
