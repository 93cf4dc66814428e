"""`ptypilot report SESSION.h5`: the one-page HTML report of a recording, from a session with a
bad frame in it, and from a recording without the summary (a recovered file)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess

import h5py
import numpy as np
import pytest

from daemon_fixtures import ptypilot, session_config
from ptypilot.client import Client
from ptypilot.processes import start_serve


@pytest.fixture
def serve(tmp_path):
    daemon = start_serve(ptypilot(), tmp_path / "serve.log")
    yield daemon
    assert daemon.stop() == 0, daemon.log()


def report(h5, out) -> str:
    result = subprocess.run([ptypilot(), "report", str(h5), "--out", str(out)],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    return out.read_text(encoding="utf-8")


def test_report_of_a_session(tmp_path, serve, fake):
    client = Client(serve.ready["control_endpoint"])
    client.configure(session_config(tmp_path, fake.data_endpoint, fake.command_endpoint,
                                    total_positions=100))
    client.start("reported")
    for _ in range(2):
        command = fake.next_command()
        if command.sub_sequence == 0:
            nan = np.full((64, 64), 1.0, np.float32)
            nan[3, 3] = np.nan
            fake.send(command, 0, counts=nan)  # bad input: counted, shown highlighted
        for i in range(len(command.positions)):
            fake.send(command, i)
    status = client.wait(timeout_s=30).status
    h5 = tmp_path / "sessions" / "reported.h5"
    with h5py.File(h5, "r") as f:
        summary = json.loads(f.attrs["summary_json"])
    assert [s["sub_sequence"] for s in summary["sub_sequences"]] == [0, 1]
    assert summary["counters"]["frames_non_finite"] == 1
    assert summary["positions_issued"] == status.positions_issued

    page = report(h5, tmp_path / "reported.html")
    # Reconstruction with positions, dose map, latencies: three pictures inside the page.
    assert page.count('src="data:image/png;base64,') == 3
    assert "<h1>Session reported</h1>" in page and "complete" in page
    rows = re.findall(r"<tr><td>(\d+)</td><td>50</td>", page)
    assert rows == ["0", "1"]  # one latency row per sub-sequence
    assert '<tr class="alarm"><td>frames_non_finite</td><td>1</td></tr>' in page
    for normal in ("frames_received_ok", "frames_accepted", "positions_approved"):
        assert f"<tr><td>{normal}</td>" in page  # normal operation: not highlighted
    assert "&quot;total_positions&quot;: 100" in page  # the configuration

    # A recovered file has no summary: the page says what it lacks instead of failing.
    bare = tmp_path / "bare.h5"
    shutil.copy(h5, bare)
    with h5py.File(bare, "a") as f:
        del f.attrs["summary_json"]
    page = report(bare, tmp_path / "bare.html")
    assert page.count('src="data:image/png;base64,') == 2
    assert "not in this recording" in page


def test_report_refuses_what_is_not_a_recording(tmp_path):
    junk = tmp_path / "junk.h5"
    junk.write_bytes(b"not hdf5")
    result = subprocess.run([ptypilot(), "report", str(junk)], capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 1
    assert "is not a readable recording" in result.stdout


def test_the_report_classifies_counters_as_the_registry_does():
    """The report's normal-operation counters are the registry's (`ptypilot counters`' last
    column), through ptypilot_core, so that the report and the live page never disagree."""
    from ptypilot.report import _normal_operation

    registry = subprocess.run([ptypilot(), "counters"], capture_output=True, text=True,
                              timeout=60, check=True).stdout
    rows = [line.split("|") for line in registry.splitlines() if line.startswith("| `")]
    from_table = {cells[1].strip().strip("`") for cells in rows if cells[4].strip() == "no"}
    assert from_table == _normal_operation()
    assert {"frames_accepted", "positions_approved"} <= from_table
    assert "frames_non_finite" not in from_table
