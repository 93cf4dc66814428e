"""Pictures of reconstructions, scan positions and FRC curves (matplotlib, no display needed)."""

from __future__ import annotations

import textwrap

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from ptypilot.resolution import THRESHOLDS  # noqa: E402


# One colour per sub-sequence where positions are drawn over a phase (matplotlib's tab10).
SUB_SEQUENCE_COLOURS = [plt.get_cmap("tab10")(k) for k in range(10)]


def add_scale_bar(ax, width_A: float) -> None:
    """A scale bar in Angstrom at the lower left of an image whose axes are in Angstrom: 1, 2 or
    5 times a power of ten, about a fifth of the image's width."""
    from mpl_toolkits.axes_grid1.anchored_artists import AnchoredSizeBar

    target = max(width_A, 1e-9) / 5
    power = 10 ** np.floor(np.log10(target))
    length = max((m * power for m in (1, 2, 5) if m * power <= target), default=power)
    bar = AnchoredSizeBar(ax.transData, length, f"{length:g} Å", "lower left", pad=0.4,
                          color="white", frameon=False, size_vertical=width_A / 150)
    ax.add_artist(bar)


def fov_crop(image: np.ndarray, grid) -> np.ndarray:
    """The part of an object image that the scan field of view covers."""
    r0, c0 = (int(round(o / grid.pixel_A)) for o in grid.fov_origin_A)
    r1 = r0 + int(round(grid.fov_height_A / grid.pixel_A)) + 1
    c1 = c0 + int(round(grid.fov_width_A / grid.pixel_A)) + 1
    return image[r0:r1, c0:c1]


def pixel_centred_extent_A(image: np.ndarray, pixel_A: float) -> tuple:
    """imshow's extent (left, right, bottom, top) in Angstrom for an image whose pixel (r, c)
    lies at (r, c) * pixel_A, as fov_crop's do: each pixel spans half a pixel either side of its
    position, so that a scan position drawn on top sits on the pixel it lit, not half a pixel
    up and left of it."""
    half = pixel_A / 2
    return (-half, image.shape[1] * pixel_A - half, image.shape[0] * pixel_A - half, -half)


def positions_to_crop_pixels(positions_A: np.ndarray, grid) -> np.ndarray:
    """Scan positions (Angstrom from the FOV origin) as (row, col) pixels of fov_crop()."""
    return np.asarray(positions_A) / grid.pixel_A


# Characters of a phase figure's title a line: its axes are about 3.5 inches wide at 12 pt, and
# a longer line ran into the colour bar's labels.
PHASE_TITLE_CHARS = 44


def phase_figure(image: np.ndarray, grid, title: str, positions_A=None, color="red"):
    """One phase image in Angstrom axes, optionally with the scan positions on top; the title
    broken into lines that fit above the image."""
    fig, ax = plt.subplots(figsize=(5.2, 4.6), dpi=120)
    shown = ax.imshow(image, cmap="inferno", extent=pixel_centred_extent_A(image, grid.pixel_A))
    fig.colorbar(shown, ax=ax, label="phase V (rad)")
    if positions_A is not None and len(positions_A):
        p = np.asarray(positions_A)
        ax.scatter(p[:, 1], p[:, 0], s=4, c=color, linewidths=0)
    add_scale_bar(ax, image.shape[1] * grid.pixel_A)
    ax.set_xlabel("x (Å)")
    ax.set_ylabel("y (Å)")
    ax.set_title(textwrap.fill(title, PHASE_TITLE_CHARS, break_long_words=False))
    fig.tight_layout()
    return fig


def save_phase(path, image: np.ndarray, grid, title: str, positions_A=None, color="red"):
    """phase_figure, written to path."""
    fig = phase_figure(image, grid, title, positions_A, color)
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


def save_fig3(path, figure_data: list[dict], title: str, preferred: tuple[str, str]) -> None:
    """Paper Fig. 3: per data set (columns) the sparse-grid and the adaptive reconstruction and
    the full raster with both position sets (sparse grid green, adaptive red). figure_data:
    per data set, its seed, grid, full-raster reference, images {policy: (image, positions)}
    and eval row, and with `ptypilot eval --reference truth` reference_label ("true phase") and
    ssim_key (the row's key of the SSIM to show) for a reference that is not the full raster;
    preferred: the (reference, adaptive) policies to show where they ran."""
    cols = [d for d in figure_data if d["images"]]
    if not cols:
        return
    shown = [p for p in preferred if any(p in d["images"] for d in cols)]
    if not shown:
        shown = sorted({p for d in cols for p in d["images"]})[:2]
    colors = {preferred[0]: "lime", preferred[1]: "red"}
    nrows = len(shown) + 1
    fig, axes = plt.subplots(nrows, len(cols), figsize=(3.0 * len(cols), 3.0 * nrows), dpi=110,
                             squeeze=False)
    for j, d in enumerate(cols):
        grid = d["grid"]
        for i, policy in enumerate(shown):
            ax = axes[i][j]
            if policy in d["images"]:
                image, _ = d["images"][policy]
                ax.imshow(image, cmap="inferno", extent=pixel_centred_extent_A(image, grid.pixel_A))
                add_scale_bar(ax, image.shape[1] * grid.pixel_A)
                ssim = d["row"]["strategies"][policy][d.get("ssim_key", "ssim_vs_full_raster")]
                against = " vs truth" if d.get("ssim_key") == "ssim_vs_truth" else ""
                ax.set_title(f"seed {d['seed']}: {policy}\nSSIM {ssim:.3f}{against}", fontsize=8)
            else:
                ax.set_title(f"seed {d['seed']}: {policy} skipped", fontsize=8)
            ax.set_xticks([])
            ax.set_yticks([])
        ax = axes[-1][j]
        ax.imshow(d["reference"], cmap="inferno",
                  extent=pixel_centred_extent_A(d["reference"], grid.pixel_A))
        add_scale_bar(ax, d["reference"].shape[1] * grid.pixel_A)
        for policy in shown:
            if policy in d["images"]:
                p = np.asarray(d["images"][policy][1])
                ax.scatter(p[:, 1], p[:, 0], s=2, c=colors.get(policy, "cyan"), linewidths=0,
                           label=policy)
        ax.set_title(f"seed {d['seed']}: {d.get('reference_label', 'full raster')}", fontsize=8)
        ax.set_xticks([])
        ax.set_yticks([])
        if j == 0:
            ax.legend(fontsize=6, loc="lower left", markerscale=3)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
