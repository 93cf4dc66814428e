"""deploy/device_bench.sh: the bundle it carries to the GPU machine holds the daemon and the
simulated detector with every shared library they load, but the C library's and CUDA's, which
that machine has; unpacked, the programs find each bundled library inside the bundle and run.
Running the benchmarks themselves needs the GPU machine (README, "The GPU")."""
from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "deploy" / "device_bench.sh"
BIN = os.environ.get("PTYPILOT_BIN")
pytestmark = pytest.mark.skipif(not BIN, reason="PTYPILOT_BIN (build/bin) is not set; run via ctest")

# What the GPU machine has of its own (device_bench.sh's system_library).
SYSTEM = re.compile(r"(libc|libm|libpthread|libdl|librt|libresolv|ld-linux-x86-64)\.so|"
                    r"libcudart\.so|libcufft\.so|libcuda\.so|linux-vdso")


def loaded_libraries(program: Path, env: dict[str, str]) -> dict[str, str]:
    """name -> the path the loader resolves it to ('not found' where it cannot)."""
    out = subprocess.run(["ldd", str(program)], capture_output=True, text=True, env=env, check=True).stdout
    found = {}
    for line in out.splitlines():
        if "=>" in line:
            name, _, where = line.strip().partition(" => ")
            found[name] = where.split(" (")[0].strip()
    return found


@pytest.fixture(scope="module")
def bundle(tmp_path_factory) -> Path:
    where = tmp_path_factory.mktemp("bundle")
    env = {**os.environ, "PTYPILOT_DEVICE_BUNDLE": str(where)}
    result = subprocess.run(["bash", str(SCRIPT), "bundle", str(Path(BIN).parent)], capture_output=True,
                            text=True, env=env, timeout=300)
    assert result.returncode == 0, result.stderr
    unpacked = where / "unpacked"
    unpacked.mkdir()
    subprocess.run(["tar", "-C", str(unpacked), "-xzf", str(where / "ptypilot.tar.gz")], check=True)
    return unpacked


def test_the_bundle_holds_both_programs_and_their_libraries_but_the_systems(bundle):
    assert (bundle / "bin" / "ptypilot").stat().st_mode & 0o111
    assert (bundle / "bin" / "ptypilot-sim").stat().st_mode & 0o111
    bundled = {p.name for p in (bundle / "lib").iterdir()}
    for library in ("libzmq.so", "libprotobuf.so", "libhdf5_serial.so", "libfftw3f.so"):
        assert any(n.startswith(library) for n in bundled), f"{library} is not bundled"
    assert not [n for n in bundled if SYSTEM.search(n)], "the GPU machine's own libraries were bundled"


def test_unpacked_programs_load_every_other_library_from_the_bundle(bundle):
    env = {**os.environ, "LD_LIBRARY_PATH": str(bundle / "lib")}
    for program in ("ptypilot", "ptypilot-sim"):
        libraries = loaded_libraries(bundle / "bin" / program, env)
        missing = [n for n, where in libraries.items() if where == "not found" and not SYSTEM.search(n)]
        assert not missing, f"{program}: not in the bundle: {missing}"
        outside = [f"{n} -> {where}" for n, where in libraries.items()
                   if not SYSTEM.search(n) and not where.startswith(str(bundle / "lib"))]
        assert not outside, f"{program} loads these from outside the bundle: {outside}"
    result = subprocess.run([str(bundle / "bin" / "ptypilot"), "bench", "loop", "--help"], capture_output=True,
                            text=True, env=env, timeout=60)
    assert result.returncode == 0, result.stderr
    assert "--viewers" in result.stdout


def test_run_without_a_bundle_says_how_to_make_one(tmp_path):
    env = {**os.environ, "PTYPILOT_DEVICE_BUNDLE": str(tmp_path / "none"), "OUT": str(tmp_path / "out")}
    result = subprocess.run(["bash", str(SCRIPT), "run"], capture_output=True, text=True, env=env, timeout=60)
    assert result.returncode != 0
    assert "deploy/device_bench.sh bundle" in (tmp_path / "out" / "device_bench.json").read_text()
