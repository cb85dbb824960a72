"""Fixtures shared by every test package: real processes (tests/support/fixtures.py)."""

pytest_plugins = ["tests.support.fixtures"]
