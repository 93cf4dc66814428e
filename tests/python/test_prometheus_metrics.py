"""`serve --http`: GET /metrics in Prometheus's text format during and after a session, checked
by promtool (Debian's prometheus package) and read back value by value."""

from __future__ import annotations

import shutil
import subprocess
import time
import urllib.error
import urllib.request

import pytest

from daemon_fixtures import ptypilot, session_config
from ptypilot.client import Client
from ptypilot.processes import start_serve


def scrape(url: str) -> str:
    with urllib.request.urlopen(url + "/metrics", timeout=10) as response:
        assert response.status == 200
        assert response.headers["Content-Type"].startswith("text/plain; version=0.0.4")
        return response.read().decode()


def samples(text: str) -> dict[str, float]:
    """name{labels} -> value, from the exposition's sample lines."""
    out = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            key, value = line.rsplit(" ", 1)
            out[key] = float(value)
    return out


def promtool_check(text: str) -> None:
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool is not installed (Debian's prometheus package, "
                    "deploy/debian-packages.txt)")
    result = subprocess.run([promtool, "check", "metrics"], input=text, capture_output=True,
                            text=True, timeout=60)
    # promtool exits 0 with lint hints on stdout, non-zero on a malformed exposition.
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.fixture
def serve(tmp_path):
    daemon = start_serve(ptypilot(), tmp_path / "serve.log", extra_args=("--http", "127.0.0.1:0"))
    yield daemon
    assert daemon.stop() == 0, daemon.log()


def test_metrics_during_and_after_a_session_pass_promtool(tmp_path, serve, fake):
    url = serve.ready["http_url"]
    assert url.startswith("http://127.0.0.1:")
    idle = scrape(url)
    promtool_check(idle)
    before = samples(idle)
    assert before['ptypilot_state{state="idle"}'] == 1
    assert before['ptypilot_state{state="running"}'] == 0
    assert before["ptypilot_frames_received_ok_total"] == 0  # listed before its first count
    assert before['ptypilot_decision_latency_seconds_count{phase="total"}'] == 0
    assert before["ptypilot_recorder_disk_free_bytes"] > 0

    client = Client(serve.ready["control_endpoint"])
    client.configure(session_config(tmp_path, fake.data_endpoint, fake.command_endpoint,
                                    total_positions=100))
    client.start("metrics")
    command = fake.next_command()
    for i in range(len(command.positions)):
        fake.send(command, i)
    second = fake.next_command()  # the first sub-sequence was reconstructed, the next issued
    # The worker publishes the sub-sequence's report once the scan generator has acknowledged.
    deadline = time.monotonic() + 10
    while True:
        during = samples(scrape(url))
        if during['ptypilot_decision_latency_seconds_count{phase="total"}'] == 1:
            break
        assert time.monotonic() < deadline, "the first decision never reached /metrics"
        time.sleep(0.05)
    assert during['ptypilot_state{state="running"}'] == 1
    assert during["ptypilot_session_frames_received"] == 50
    assert during["ptypilot_session_sub_sequences"] == 1

    for i in range(len(second.positions)):
        fake.send(second, i)
    status = client.wait(timeout_s=30).status
    after_text = scrape(url)
    promtool_check(after_text)
    after = samples(after_text)
    assert after['ptypilot_state{state="idle"}'] == 1
    assert after["ptypilot_session_frames_recorded"] == status.frames_recorded == 100
    assert after["ptypilot_session_positions_issued"] == status.positions_issued
    assert after["ptypilot_frames_received_ok_total"] == status.counters["frames_received_ok"]
    # Both sub-sequences' decisions; the histogram is cumulative and ends at +Inf.
    total = {k: v for k, v in after.items()
             if k.startswith('ptypilot_decision_latency_seconds_bucket{phase="total"')}
    assert total['ptypilot_decision_latency_seconds_bucket{phase="total",le="+Inf"}'] == 2
    values = list(total.values())
    assert values == sorted(values)


def test_http_refuses_an_address_other_machines_reach(tmp_path):
    process = subprocess.run([ptypilot(), "serve", "--control", "tcp://127.0.0.1:*",
                              "--events", "tcp://127.0.0.1:*", "--recorder-root", str(tmp_path),
                              "--http", "0.0.0.0:0"],
                             capture_output=True, text=True, timeout=30)
    assert process.returncode != 0
    assert "not a loopback address" in process.stderr


def test_other_paths_and_methods_are_refused(serve):
    url = serve.ready["http_url"]
    with pytest.raises(urllib.error.HTTPError) as error:
        urllib.request.urlopen(url + "/metrics/extra", timeout=10)
    assert error.value.code == 404
    request = urllib.request.Request(url + "/metrics", data=b"x", method="POST")
    with pytest.raises(urllib.error.HTTPError) as error:
        urllib.request.urlopen(request, timeout=10)
    assert error.value.code == 405
