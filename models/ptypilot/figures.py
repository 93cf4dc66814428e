"""Pictures of reconstructions, scan positions and FRC curves (matplotlib, no display needed)."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from ptypilot.resolution import THRESHOLDS  # noqa: E402


def fov_crop(image: np.ndarray, grid) -> np.ndarray:
    """The part of an object image that the scan field of view covers."""
    r0, c0 = (int(round(o / grid.pixel_A)) for o in grid.fov_origin_A)
    r1 = r0 + int(round(grid.fov_height_A / grid.pixel_A)) + 1
    c1 = c0 + int(round(grid.fov_width_A / grid.pixel_A)) + 1
    return image[r0:r1, c0:c1]


def positions_to_crop_pixels(positions_A: np.ndarray, grid) -> np.ndarray:
    """Scan positions (Angstrom from the FOV origin) as (row, col) pixels of fov_crop()."""
    return np.asarray(positions_A) / grid.pixel_A


def save_phase(path, image: np.ndarray, grid, title: str, positions_A=None, color="red"):
    """One phase image in Angstrom axes, optionally with the scan positions on top."""
    extent_A = (0, image.shape[1] * grid.pixel_A, image.shape[0] * grid.pixel_A, 0)
    fig, ax = plt.subplots(figsize=(5.2, 4.6), dpi=120)
    shown = ax.imshow(image, cmap="inferno", extent=extent_A)
    fig.colorbar(shown, ax=ax, label="phase V (rad)")
    if positions_A is not None and len(positions_A):
        p = np.asarray(positions_A)
        ax.scatter(p[:, 1], p[:, 0], s=4, c=color, linewidths=0)
    ax.set_xlabel("x (Å)")
    ax.set_ylabel("y (Å)")
    ax.set_title(title)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def save_frc(path, curves: dict[str, dict], title: str):
    """FRC curves (name -> ptypilot_core.frc result, or a dict with mean/std) with the half-bit
    threshold of the first curve and the fixed thresholds that ptypilot.resolution reads
    resolutions at."""

    fig, ax = plt.subplots(figsize=(5.6, 4.0), dpi=120)
    threshold_drawn = False
    for name, c in curves.items():
        f = np.asarray(c["spatial_frequency_per_A"])
        y = np.asarray(c["correlation"])
        ax.plot(f, y, label=name)
        if "std" in c:
            s = np.asarray(c["std"])
            ax.fill_between(f, y - s, y + s, alpha=0.25)
        if not threshold_drawn:
            ax.plot(f, c["half_bit_threshold"], "k--", lw=0.8, label="half-bit threshold")
            threshold_drawn = True
    for (name, value), style in zip(THRESHOLDS.items(), (":", "-.")):
        ax.axhline(value, color="grey", ls=style, lw=0.8, label=f"threshold {name}")
    ax.set_xlabel("spatial frequency (1/Å)")
    ax.set_ylabel("FRC")
    ax.set_ylim(-0.1, 1.05)
    ax.grid(alpha=0.3)
    ax.legend()
    ax.set_title(title)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
