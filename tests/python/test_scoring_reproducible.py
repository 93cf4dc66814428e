"""The scored image is a function of the recorded frames alone: data.converged_reconstruction
gives the same bits in fresh processes (FFTW plans not chosen by timing), on 1, 2 or 3 threads,
and with another process keeping a core busy (no dependence on which thread takes which batch)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

# Runs in a fresh interpreter: FFTW plans live for a process, so a plan chosen by timing would
# be chosen anew in each.
SCORE = """
import hashlib, sys
import numpy as np
import ptypilot_core as core
from ptypilot import data
preset = core.experiment_preset("graphene-small")
raster = core.raster_positions(preset.scan_rows, preset.scan_cols, preset.step_A)[::5]
sim = core.Simulation("graphene-small", 11, dose_e_per_A2=1e5, noise_seed=3)
frames = sim.frames(raster)
for threads in map(int, sys.argv[1:]):
    image = data.converged_reconstruction(preset.probe, sim.grid, raster, frames, threads=threads)
    print(hashlib.sha256(image.tobytes()).hexdigest())
"""


def scores(*threads: int) -> list[str]:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    out = subprocess.run([sys.executable, "-c", SCORE, *map(str, threads)], env=env,
                         capture_output=True, text=True, timeout=300, check=True)
    return out.stdout.split()


def test_the_same_frames_score_the_same_bits_in_every_process_and_on_any_thread_count():
    busy = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        runs = scores(2, 2, 2) + scores(2, 1, 3) + scores(2)
    finally:
        busy.kill()
        busy.wait()
    assert len(runs) == 7 and len(set(runs)) == 1, runs
