"""The command line as a person meets it: every command and subcommand that `ptypilot --help`
lists answers `--help` with a usage line and exit 0, and an option it does not know is an error
that names the option. The commands are read from the help itself, so a new command is covered
as soon as it is listed."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

BIN = os.environ.get("PTYPILOT_BIN")
pytestmark = pytest.mark.skipif(not BIN, reason="PTYPILOT_BIN (build/bin) is not set; run via ctest")


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(Path(BIN) / "ptypilot"), *args], capture_output=True, text=True,
                          timeout=60)


def listed_commands(help_text: str) -> list[str]:
    """The names in the `commands:` section: its rows start with two spaces and the name (a
    wrapped summary continues further in)."""
    names, inside = [], False
    for line in help_text.splitlines():
        if line == "commands:":
            inside = True
        elif inside and line.startswith("  ") and not line.startswith("   "):
            names.append(line.split()[0])
        elif inside and not line.strip():
            break
    return names


def all_command_paths() -> list[tuple[str, ...]]:
    top = run("--help")
    assert top.returncode == 0, top.stderr
    paths = []
    for name in listed_commands(top.stdout):
        paths.append((name,))
        group = run(name, "--help")
        paths.extend((name, sub) for sub in listed_commands(group.stdout))
    return paths


PATHS = all_command_paths() if BIN else []


def test_the_help_lists_the_commands():
    names = [p[0] for p in PATHS if len(p) == 1]
    for name in ["serve", "sim-detector", "replay", "ctl", "config", "counters", "demo", "eval",
                 "report", "bench", "version", "help"]:
        assert name in names
    subs = {p for p in PATHS if len(p) == 2}
    assert {("bench", "reconstruct"), ("bench", "loop"), ("bench", "ingest")} <= subs
    assert {("config", "reference"), ("config", "defaults"), ("config", "check")} <= subs
    assert {("ctl", c) for c in ["configure", "start", "stop", "status", "reconstruction", "wait",
                                 "events"]} <= subs


@pytest.mark.parametrize("path", PATHS, ids=" ".join)
def test_every_command_has_help(path):
    result = run(*path, "--help")
    assert result.returncode == 0, result.stderr
    usage = [line for line in result.stdout.splitlines() if line.startswith("usage: ")]
    assert usage, result.stdout
    assert usage[0].startswith("usage: ptypilot " + " ".join(path)), usage[0]


@pytest.mark.parametrize("path", PATHS, ids=" ".join)
def test_an_unknown_option_is_an_error_naming_it(path, tmp_path):
    # `--out DIR` after it satisfies demo's and eval's argparse, which reports a missing required
    # option before an unknown one; the other commands stop at the unknown option.
    result = run(*path, "--no-such-option", "--out", str(tmp_path))
    assert result.returncode == 2, result.stdout + result.stderr
    assert "--no-such-option" in result.stderr


def test_groups_and_unknown_commands():
    for args in [("bench",), ("ctl",), ("bench", "nonsense"), ("nonsense",), ()]:
        result = run(*args)
        assert result.returncode == 2, (args, result.stderr)
        assert "usage:" in result.stderr or "unknown command" in result.stderr
    assert run("help", "bench", "loop").stdout == run("bench", "loop", "--help").stdout
