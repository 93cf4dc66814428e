"""Fixtures that the tests of `serve` as a process share (pytest loads this file for every test
module in this folder)."""

import pytest

# Recordings store /frames/counts with the bitshuffle filter (32008): Debian's `bitshuffle`
# package puts its plugin on HDF5's default path; pip's hdf5plugin registers one when imported.
try:
    import hdf5plugin  # noqa: F401
except ImportError:
    pass


@pytest.fixture
def fake():
    """A scan generator and detector whose frames the test chooses (daemon_fixtures)."""
    from daemon_fixtures import FakeDetector  # needs build/python, as only these tests do

    f = FakeDetector()
    yield f
    f.close()
