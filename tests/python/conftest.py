"""Fixtures that the tests of `serve` as a process share (pytest loads this file for every test
module in this folder)."""

import pytest


@pytest.fixture
def fake():
    """A scan generator and detector whose frames the test chooses (daemon_fixtures)."""
    from daemon_fixtures import FakeDetector  # needs build/python, as only these tests do

    f = FakeDetector()
    yield f
    f.close()
