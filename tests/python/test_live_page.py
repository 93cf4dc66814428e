"""The live page of `serve --http`: headless Chromium (Debian's chromium and chromium-driver,
driven by python3-selenium) watches a session of simulated MoS2 frames, and the page's HTTP
routes are checked without a browser: who may stop a session, and what is refused."""

from __future__ import annotations

import json
import shutil
import subprocess
import time
import urllib.error
import urllib.request

import numpy as np
import pytest

from daemon_fixtures import ptypilot, session_config
from ptypilot.client import Client
from ptypilot.processes import start_serve

PRESET = "mos2-paper"


@pytest.fixture
def serve(tmp_path):
    daemon = start_serve(ptypilot(), tmp_path / "serve.log", extra_args=("--http", "127.0.0.1:0"))
    yield daemon
    assert daemon.stop() == 0, daemon.log()


@pytest.fixture
def browser():
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        pytest.skip("python3-selenium is not installed (deploy/debian-packages.txt)")
    driver_path = shutil.which("chromedriver")
    chromium = shutil.which("chromium")
    if driver_path is None or chromium is None:
        pytest.skip("chromium and chromium-driver are not installed (deploy/debian-packages.txt)")
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    # --no-sandbox: CI runs as root, where Chromium's sandbox refuses to start.
    for argument in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                     "--window-size=1280,900"):
        options.add_argument(argument)
    driver = webdriver.Chrome(service=Service(driver_path), options=options)
    yield driver
    driver.quit()


class Detector:
    """Simulated MoS2 frames for the positions the daemon asks the fake detector for."""

    def __init__(self, fake):
        import ptypilot_core as core
        self.fake = fake
        self.sim = core.Simulation(PRESET, 7, dose_e_per_A2=1e5, noise_seed=3)

    def expose(self, command) -> None:
        positions = np.array([[p.y_A, p.x_A] for p in command.positions])
        # The simulator's frames have the zero frequency at pixel (0, 0); a detector's, and what
        # the session is configured for, have the beam at the centre.
        frames = np.fft.fftshift(self.sim.frames(positions), axes=(-2, -1))
        for i, counts in enumerate(frames):
            self.fake.send(command, i, counts=counts,
                           electrons_per_frame=float(self.sim.electrons_per_frame))


def text(driver, element_id: str) -> str:
    return driver.find_element("id", element_id).text.strip()


def wait_for(driver, what: str, condition, timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, (
            f"the page never showed {what}; state {text(driver, 'state')!r}, sub-sequences "
            f"{text(driver, 'sub-sequences-drawn')!r}, frames recorded "
            f"{text(driver, 'frames-recorded')!r}; browser log: {driver.get_log('browser')}")
        time.sleep(0.05)


# The reconstruction canvas's pixels: how many distinct colours, and their spread.
CANVAS_STATS = """
const c = document.getElementById('reconstruction');
const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
const colours = new Set();
let sum = 0, sum2 = 0, n = 0;
for (let i = 0; i < d.length; i += 4) {
  colours.add((d[i] << 16) | (d[i + 1] << 8) | d[i + 2]);
  const g = (d[i] + d[i + 1] + d[i + 2]) / 3;
  sum += g; sum2 += g * g; n += 1;
}
return [colours.size, Math.sqrt(sum2 / n - (sum / n) ** 2), c.width, c.height];
"""


def test_the_live_page_draws_each_sub_sequence_and_shows_what_was_recorded(
        tmp_path, serve, fake, browser):
    url = serve.ready["http_url"]
    client = Client(serve.ready["control_endpoint"])
    client.configure(session_config(tmp_path, fake.data_endpoint, fake.command_endpoint,
                                    total_positions=150))
    client.start("live")
    browser.get(url + "/")
    detector = Detector(fake)

    detector.expose(fake.next_command())
    detector.expose(fake.next_command())
    third = fake.next_command()  # sub-sequences 0 and 1 reconstructed, 2 issued
    wait_for(browser, "two sub-sequences", lambda: text(browser, "sub-sequences-drawn") == "2")
    status = client.status().status
    assert status.frames_recorded == 100
    wait_for(browser, "the frames recorded", lambda: text(browser, "frames-recorded") == "100")
    assert text(browser, "positions-drawn") == "100"
    screenshot = tmp_path / "live-page.png"
    assert browser.save_screenshot(str(screenshot))
    print(f"screenshot: {screenshot}")

    colours, spread, width, height = browser.execute_script(CANVAS_STATS)
    assert width > 100 and height > 100
    # The phase in a colour map with dots over it: a blank or one-colour canvas has 1 colour.
    assert colours > 200, colours
    assert spread > 10, spread
    assert text(browser, "state") == "running"
    assert len(browser.find_elements("css selector", "#latencies tbody tr")) == 2

    # Without CURVE keys every client on this machine is an operator: the page may stop.
    stop = browser.find_element("id", "stop")
    assert stop.is_displayed()
    stop.click()
    browser.switch_to.alert.accept()
    wait_for(browser, "finishing", lambda: text(browser, "state") == "finishing")
    detector.expose(third)  # the sub-sequence in flight still comes in, then the session ends
    wait_for(browser, "the session's end", lambda: text(browser, "state") == "idle")
    status = client.status().status
    assert status.frames_recorded == 150
    wait_for(browser, "every position", lambda: text(browser, "sub-sequences-drawn") == "3")
    assert text(browser, "positions-drawn") == text(browser, "frames-recorded") == "150"
    assert not browser.find_element("id", "stop").is_displayed()
    alarms = browser.find_elements("css selector", "#counters tr.alarm")
    assert alarms == [], [a.text for a in alarms]


def get(url: str, headers: dict | None = None) -> tuple[int, str]:
    request = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


def post_stop(url: str, headers: dict) -> tuple[int, dict]:
    request = urllib.request.Request(url + "/live/stop", data=b"", method="POST", headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def first_events(url: str, count: int) -> list[tuple[str, dict]]:
    """The first `count` server-sent events of /live/events."""
    events, name = [], None
    with urllib.request.urlopen(url + "/live/events", timeout=10) as stream:
        assert stream.headers["Content-Type"].startswith("text/event-stream")
        for raw in stream:
            line = raw.decode().rstrip("\n")
            if line.startswith("event: "):
                name = line[len("event: "):]
            elif line.startswith("data: "):
                events.append((name, json.loads(line[len("data: "):])))
                if len(events) == count:
                    return events
    raise AssertionError(f"the stream ended after {events}")


def test_the_page_is_built_in_and_its_events_are_full_states(serve):
    url = serve.ready["http_url"]
    for path, kind in (("/", "text/html"), ("/live.js", "text/javascript"), ("/live.css", "text/css")):
        with urllib.request.urlopen(url + path, timeout=10) as response:
            assert response.headers["Content-Type"].startswith(kind)
            body = response.read().decode()
        assert "http://" not in body and "https://" not in body, f"{path} reaches outside"
    # Idle: a status and the (empty) reconstruction, at once.
    events = dict(first_events(url, 2))
    assert events["status"]["state"] == "idle"
    assert len(events["status"]["counters"]) > 40
    assert not any(c["alarm"] for c in events["status"]["counters"])
    assert events["reconstruction"]["image"]["rows"] == 0
    assert events["reconstruction"]["next"] is None


def test_who_may_stop_without_keys_and_what_is_refused(tmp_path, serve, fake):
    url = serve.ready["http_url"]
    status, body = get(url + "/live/role")
    assert status == 200
    assert json.loads(body) == {
        "role": "operator", "can_stop": False,
        "why": "without CURVE keys every client on this machine is an operator"}
    stop = {"X-Ptypilot-Action": "stop"}
    assert post_stop(url, stop) == (409, {"ok": False, "error": "nothing to stop: the daemon is idle"})

    client = Client(serve.ready["control_endpoint"])
    client.configure(session_config(tmp_path, fake.data_endpoint, fake.command_endpoint))
    client.start("refusals")
    fake.next_command()
    assert json.loads(get(url + "/live/role")[1])["can_stop"] is True
    # A page of another site cannot stop it: no custom header without a CORS preflight, and
    # this server grants none; an Origin other than its own, or a Host that is not this machine
    # (DNS rebinding), is refused.
    assert post_stop(url, {})[0] == 400
    assert post_stop(url, {**stop, "Origin": "http://evil.example"})[0] == 403
    assert get(url + "/", {"Host": "evil.example"})[0] == 403
    assert get(url + "/live/role", {"Host": "evil.example:80"})[0] == 403
    assert client.state() == "running"
    code, reply = post_stop(url, {**stop, "Origin": url})
    assert (code, reply) == (200, {"ok": True, "state": "finishing"})
    assert client.state() == "finishing"


def test_with_keys_a_page_stops_only_the_session_whose_token_it_holds(tmp_path, fake):
    keys = tmp_path / "keys"
    made = {}
    for name, role in (("server", "operator"), ("alice", "controller")):
        out = json.loads(subprocess.run(
            [ptypilot(), "keygen", "--out", str(keys), "--name", name, "--role", role],
            capture_output=True, text=True, timeout=60, check=True).stdout)
        made[name] = out
    (keys / "authorized").write_text(made["alice"]["authorized_keys_line"] + "\n")
    daemon = start_serve(ptypilot(), tmp_path / "serve.log", extra_args=(
        "--http", "127.0.0.1:0", "--server-key", str(keys / "server.key_secret"),
        "--authorized-keys", str(keys / "authorized")))
    try:
        url = daemon.ready["http_url"]
        client = Client(daemon.ready["control_endpoint"], server_key=str(keys / "server.key"),
                        client_key=str(keys / "alice.key_secret"))
        client.configure(session_config(tmp_path, fake.data_endpoint, fake.command_endpoint))
        token = client.start("keyed").session_token
        fake.next_command()
        stop = {"X-Ptypilot-Action": "stop"}
        assert json.loads(get(url + "/live/role")[1])["role"] == "observer"
        wrong = {"Authorization": "Bearer not-the-token"}
        assert json.loads(get(url + "/live/role", wrong)[1])["can_stop"] is False
        code, reply = post_stop(url, {**stop, **wrong})
        assert code == 403 and reply["error"].startswith("not authorized:"), reply
        assert post_stop(url, stop)[0] == 403
        right = {"Authorization": f"Bearer {token}"}
        assert json.loads(get(url + "/live/role", right)[1]) == {
            "role": "controller", "can_stop": True, "why": "holds the token of session keyed"}
        assert post_stop(url, {**stop, **right}) == (200, {"ok": True, "state": "finishing"})
        assert client.status().status.counters["control_requests_unauthorized"] == 2
    finally:
        assert daemon.stop() == 0, daemon.log()


def test_bench_loop_watches_every_session_with_its_viewers(tmp_path):
    """`bench loop --viewers N` runs each seed watched and not; its viewers are real clients of
    /live/events (the timing itself is a benchmark's, README "Loop and ingest benchmarks")."""
    result = subprocess.run([ptypilot(), "bench", "loop", "--positions", "150", "--subsequence",
                             "50", "--sessions", "1", "--viewers", "3", "--dir", str(tmp_path)],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    report = json.loads(result.stdout)
    page = report["live_page"]
    assert page["viewers"] == 3
    # Two decisions a run (the third sub-sequence issues nothing), each seed run twice.
    assert report["decisions"] == 4
    assert page["paired_difference_ms"]["count"] == 2
    # The bootstrap over seeds: with one seed every resample is that seed, so the interval
    # closes on the measured difference.
    assert page["p99_added_ms_interval_95"] == [page["p99_added_ms"]] * 2
    assert "bootstrap" in page["p99_added_ms_interval_95_definition"]
    # Each viewer was sent reconstructions; how many depends on the load, since events that
    # come within one of the page's 100 ms ticks are sent as one (each is a full state).
    assert page["reconstruction_events_per_viewer_per_session"] >= 1
    assert page["http_thread_cpu_ms_per_decision"] > 0
    # Per decision, the page thread's CPU time inside it, watched and not.
    inside = page["live_page_cpu_in_decision_ms"]
    for watched in ("with_viewers", "without_viewers"):
        assert 0 <= inside[watched]["p50"] <= inside[watched]["p99"] <= inside[watched]["max"]
