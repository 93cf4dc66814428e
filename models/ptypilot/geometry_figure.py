"""The README's picture of the frame geometry (README "Frame geometry"): a mos2-paper frame as a
detector sends it (centred: the zero frequency at pixel floor(D/2)), with the bright-field disk's
centre and radius drawn; the same frame as the reconstructor takes it (FFT layout: the disk
split over the four corners); and a frame whose disk is off-centre, before and after the
geometry's disk offset. Every conversion is the daemon's own (ptypilot_core.apply_frame_geometry,
kernels/include/ptypilot/frame_geometry.hpp).

    PYTHONPATH=build/python:models python3 -m ptypilot.geometry_figure \\
        --out models/shipped/results/geometry/frame_geometry.png
"""

from __future__ import annotations

import argparse
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

import ptypilot_core as core  # noqa: E402

PRESET = "mos2-paper"
# Exaggerated so that it shows, and whole: a sub-pixel shift of a hard-edged disk rings (Gibbs),
# which the log scale here would make look larger than it is.
OFFSET_PX = (3.0, -2.0)


def frames():
    preset = core.experiment_preset(PRESET)
    probe = preset.probe
    position = np.array([[preset.step_A * preset.scan_rows / 2, preset.step_A * preset.scan_cols / 2]])
    fft = core.Simulation(PRESET, 1, dose_e_per_A2=1e6, noise_seed=1).frames(position)[0]
    centred = core.fftshift_frame(fft)
    # An off-centre disk: the centred frame moved by +OFFSET_PX.
    off = np.roll(centred, (int(OFFSET_PX[0]), int(OFFSET_PX[1])), axis=(0, 1))
    radius = probe.semiangle_mrad / probe.detector_pixel_mrad
    return centred, off, radius


def draw(out: Path) -> None:
    centred, off, radius = frames()
    n = centred.shape[0]
    c = n // 2
    to_fft, _ = core.apply_frame_geometry(centred, layout="centred")
    corrected, _ = core.apply_frame_geometry(off, layout="centred", disk_offset_px=OFFSET_PX)
    panels = [
        (centred, "as the detector sends it: centred\n(frame_layout \"centred\", the default)",
         [(c, c)]),
        (to_fft, "as the reconstructor takes it: FFT layout\n(ifftshift: pixel floor(D/2) -> [0, 0])",
         [(0, 0), (0, n), (n, 0), (n, n)]),
        (off, f"disk off-centre by {OFFSET_PX} px (y, x)\n(disk_offset_px)",
         [(c + OFFSET_PX[0], c + OFFSET_PX[1])]),
        (np.fft.fftshift(corrected), "after the disk offset (a roll; sub-pixel:\na Fourier shift), shown centred",
         [(c, c)]),
    ]
    fig, axes = plt.subplots(1, 4, figsize=(15, 4.4))
    for ax, (image, title, centres) in zip(axes, panels):
        ax.imshow(np.log1p(image), cmap="magma", interpolation="nearest")
        for y, x in centres:
            ax.add_patch(plt.Circle((x, y), radius, fill=False, color="cyan", lw=1.2))
            ax.plot([x], [y], "+", color="cyan", ms=10)
        ax.plot([c], [c], "x", color="white", ms=6)
        ax.set_xlim(-0.5, n - 0.5)
        ax.set_ylim(n - 0.5, -0.5)
        ax.set_title(title, fontsize=9)
        ax.set_xticks([0, c, n - 1])
        ax.set_yticks([0, c, n - 1])
    fig.suptitle(f"{PRESET}, {n} x {n} px, log counts; cyan: the bright-field disk "
                 f"(radius semiangle / detector pixel = {radius:.1f} px), white x: pixel floor(D/2)",
                 fontsize=10)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=90)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path,
                        default=Path("models/shipped/results/geometry/frame_geometry.png"))
    args = parser.parse_args(argv)
    draw(args.out)
    print(args.out)


if __name__ == "__main__":
    main()
