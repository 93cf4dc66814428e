"""The density oracle's placements: the share it is given lands on the material, evenly, once."""

from __future__ import annotations

import numpy as np
import pytest

import ptypilot_core as core
from ptypilot import data
from ptypilot.density_oracle import oracle_positions
from ptypilot.figures import fov_crop


@pytest.mark.parametrize("share", [0.0, 0.6, 1.0])
def test_oracle_puts_its_share_on_the_material(share):
    preset = core.experiment_preset("mos2-flake-paper")
    sim = data.simulation(data.validation_seeds(1)[0], "episode", "mos2-flake-paper")
    grid = sim.grid
    material = fov_crop(sim.material_mask, grid) > 0.5
    positions = oracle_positions(material, preset, grid, 250, share)
    assert positions.shape == (250, 2)
    assert len(np.unique(positions, axis=0)) == 250
    px = np.rint(positions / grid.pixel_A).astype(int)
    on = material[px[:, 0], px[:, 1]]
    assert on.sum() == round(share * 250)
    # Even over its part: no two closer than a raster step.
    d = np.linalg.norm(positions[:, None] - positions[None], axis=-1)
    assert d[~np.eye(250, dtype=bool)].min() >= preset.step_A - 1e-9
