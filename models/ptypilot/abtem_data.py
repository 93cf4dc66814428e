"""Recorded data sets from abTEM, an independent multislice code, for `ptypilot eval --dataset-dir`.

    deploy/run abtem-data --out DIR [--kinds mos2 mos2-flake mos2-small-flake] [--seeds 0 1]
    (.venv-abtem/bin/python -m ptypilot.abtem_data ..., with PYTHONPATH=build/python:models)

Our own simulator must not be the only judge of the scanning strategies, so these data sets share
nothing with it but the geometry of the `mos2-paper` preset (60 kV, 33 mrad, aberration-free,
100 x 100 raster at 0.2 A, 64 x 64 patterns of 4.937 mrad, so a 0.154 A object pixel) and the
dose (ptypilot.data.DOSE_E_PER_A2 of the full raster, Poisson noise). The atoms come from ASE
(2H-MoS2, S and Mo in their own planes), the potential from abTEM's Lobato parametrisation, the
patterns from abTEM's multislice with one slice per atomic plane.

The detector is modelled as a real one is: abTEM's cell is 3 x 64 object pixels wide, so its
patterns are sampled three times finer than ours, and each of our pixels is the sum of 3 x 3 of
abTEM's, centred on our pixel's angle. abTEM's sampling is 0.6 of our object pixel so that its
antialiasing aperture (2/3 of its Nyquist angle, 176 mrad) lies beyond the detector's edge
(158 mrad along the axes); only the detector's corners, out to 223 mrad, are cut there.

Layout. abTEM's diffraction patterns are centred (zero angle at index n // 2, numpy's fftshift);
`ptypilot replay` and the reconstructor take the unshifted FFT layout (zero angle at [0, 0]), so
the frames written here are np.fft.ifftshift-ed (to_unshifted). Axes: the first axis of every
array (abTEM's x) is ptypilot's row axis (y): object, scan and pattern alike, which is a mirror
of the plane and changes nothing for a round, aberration-free probe. Before writing anything the
script checks this against ptypilot's own forward model (orientation_check): one abTEM pattern
of a single Mo atom beside the probe must match ptypilot's pattern of the same projected
potential better untransformed than under any flip, transpose or swap of the scan axes.

Writes to DIR, per specimen NAME (e.g. abtem-mos2-s0):
  NAME.npy             (100, 100, 64, 64) uint16 counts, unshifted FFT layout
  NAME.json            the sidecar replay reads; true_potential names NAME-truth.npy
  NAME-truth.npy       the true phase in rad on eval's object grid (ptypilot.recorded_eval
                       .object_grid), sigma times abTEM's projected potential (the sum of the
                       multislice's own slices), band-limited as ptypilot's simulator limits its
                       truth (2/3 of the object grid's Nyquist frequency, smooth roll-off)
  NAME.provenance.json what was simulated and how: versions, cell, slices, seeds, material
                       fraction, layout, the orientation check, timings
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

import ptypilot_core as core

PRESET = "mos2-paper"
# Copies, checked by the tests: ptypilot.data and recorded_eval pull in the daemon's client
# (zmq), which .venv-abtem does not have.
DOSE_E_PER_A2 = 1e5        # ptypilot.data.DOSE_E_PER_A2
MARGIN_PX = 3              # ptypilot.recorded_eval.MARGIN_PX: eval's object grid
BIN = 3                    # abTEM pattern pixels per detector pixel, per axis (odd: centred bins)
OVERSAMPLE = 5 / 3         # object pixel / abTEM sampling: antialias cut-off beyond our edge
CELL_OFFSET_PX = 3         # object pixel of abTEM's cell origin: centres the FOV in the cell
MOS2_A, MOS2_THICKNESS_A = 3.18, 3.19   # 2H-MoS2 lattice constant and S-S distance
VACUUM_A = 0.8             # above and below the S planes, inside abTEM's cell
# Material's share of the scan FOV per flake kind, as the presets mos2-flake-paper and
# mos2-small-flake-paper.
FLAKE_FRACTIONS = {"mos2-flake": 0.40, "mos2-small-flake": 0.24}
# Each kind's own random streams (atoms and noise), so that adding a kind changes no other.
KIND_STREAMS = {"mos2": 1, "mos2-flake": 2, "mos2-small-flake": 3}
VACANCIES = 3              # as ptypilot's specimens
BAND_LIMIT_FRACTION, ROLL_OFF_START = 2.0 / 3.0, 0.6   # kernels/src/specimen.cpp
LAYOUT = ("unshifted FFT layout: zero scattering angle at pixel [0, 0] (np.fft.ifftshift of "
          "abTEM's centred patterns); axis 0 of object, scan and pattern is abTEM's x")


class Geometry:
    """The mos2-paper geometry, and where abTEM's periodic cell lies on eval's object grid."""

    def __init__(self, preset: str = PRESET):
        p = core.experiment_preset(preset)
        self.preset, self.probe = p, p.probe
        self.rows, self.cols, self.step_A = p.scan_rows, p.scan_cols, p.step_A
        self.grid = core.object_grid_for_fov((self.rows - 1) * self.step_A,
                                             (self.cols - 1) * self.step_A, self.probe.pixel_A,
                                             self.probe.window_px, MARGIN_PX)
        self.pixel_A = self.probe.pixel_A
        self.cell_px = BIN * self.probe.window_px          # object pixels per abTEM cell side
        self.cell_A = self.cell_px * self.pixel_A
        self.gpts = int(round(self.cell_px * OVERSAMPLE))  # abTEM grid points per side
        self.cell_origin_A = CELL_OFFSET_PX * self.pixel_A  # in object coordinates

    def abtem_positions(self, positions_A: np.ndarray) -> np.ndarray:
        """Scan positions [y, x] (A from the FOV origin, as ptypilot's) as abTEM cell points."""
        origin = np.asarray(self.grid.fov_origin_A) - self.cell_origin_A
        return np.asarray(positions_A, np.float64) + origin

    def raster_A(self) -> np.ndarray:
        return np.asarray(core.raster_positions(self.rows, self.cols, self.step_A))


# --- layout: pure numpy, tested without abTEM (tests/python/test_abtem_data.py) ---------------

def bin_centred(patterns: np.ndarray, factor: int, out_px: int) -> np.ndarray:
    """Centred patterns (..., n, n), zero angle at n // 2, summed in factor x factor blocks to
    (..., out_px, out_px), centred (zero at out_px // 2): output pixel m is the sum over the
    input pixels whose angle index lies within (factor - 1) / 2 of factor * (m - out_px // 2)."""
    if factor % 2 != 1:
        raise ValueError("factor must be odd, so that every detector pixel is centred on its angle")
    n = patterns.shape[-1]
    if patterns.shape[-2] != n:
        raise ValueError(f"square patterns expected, got {patterns.shape[-2:]}")
    first = n // 2 - factor * (out_px // 2) - factor // 2
    last = first + factor * out_px
    if first < 0 or last > n:
        raise ValueError(f"{n} px patterns cannot give {out_px} px bins of {factor}")
    crop = patterns[..., first:last, first:last]
    shape = crop.shape[:-2] + (out_px, factor, out_px, factor)
    return crop.reshape(shape).sum(axis=(-3, -1))


def to_unshifted(centred: np.ndarray) -> np.ndarray:
    """Centred patterns (zero angle at n // 2) in the unshifted FFT layout ptypilot reads."""
    return np.fft.ifftshift(centred, axes=(-2, -1))


def band_limit(image: np.ndarray, pixel_A: float) -> np.ndarray:
    """The image band-limited as ptypilot's simulator limits its potentials: weight 1 up to 0.6
    of the cut-off (2/3 of Nyquist), 0 from it on, a C-infinity step between."""
    q = np.hypot(*np.meshgrid(np.fft.fftfreq(image.shape[0], pixel_A),
                              np.fft.fftfreq(image.shape[1], pixel_A), indexing="ij"))
    q_cut = BAND_LIMIT_FRACTION / (2 * pixel_A)
    t = np.clip((q - ROLL_OFF_START * q_cut) / ((1 - ROLL_OFF_START) * q_cut), 0, 1)
    seed = lambda x: np.where(x > 0, np.exp(-1 / np.maximum(x, 1e-300)), 0.0)  # noqa: E731
    weight = seed(1 - t) / (seed(1 - t) + seed(t))
    return np.real(np.fft.ifft2(np.fft.fft2(image) * weight))


def cell_to_object_grid(cell_image: np.ndarray, geometry: Geometry) -> np.ndarray:
    """An image of abTEM's periodic cell, at the object pixel, on eval's object grid: object
    pixel (i, j) is cell pixel (i - CELL_OFFSET_PX, j - CELL_OFFSET_PX) modulo the cell."""
    g = geometry.grid
    rows = (np.arange(g.rows) - CELL_OFFSET_PX) % cell_image.shape[0]
    cols = (np.arange(g.cols) - CELL_OFFSET_PX) % cell_image.shape[1]
    return cell_image[np.ix_(rows, cols)]


def fourier_resample(image: np.ndarray, out_px: int) -> np.ndarray:
    """A periodic image on out_px x out_px points of the same cell (Fourier cropping)."""
    n = image.shape[0]
    spectrum = np.fft.fftshift(np.fft.fft2(image))
    first = n // 2 - out_px // 2
    cropped = spectrum[first:first + out_px, first:first + out_px]
    return np.real(np.fft.ifft2(np.fft.ifftshift(cropped))) * (out_px / n) ** 2


def poisson_counts(patterns: np.ndarray, electrons_per_pattern: float, seed: int) -> np.ndarray:
    """Counts as ptypilot's simulator draws them (mean = intensity x electrons per pattern),
    from a generator seeded by `seed`, as uint16."""
    rng = np.random.default_rng(seed)
    counts = rng.poisson(np.clip(patterns, 0, None) * electrons_per_pattern)
    if counts.max() > np.iinfo(np.uint16).max:
        raise ValueError("counts overflow uint16")
    return counts.astype(np.uint16)


def write_dataset(out: Path, name: str, counts: np.ndarray, truth_rad: np.ndarray,
                  geometry: Geometry, dose_e_per_A2: float, provenance: dict) -> Path:
    """NAME.npy, its sidecar NAME.json (true_potential: NAME-truth.npy) and NAME.provenance.json
    in `out`; counts (rows, cols, N, N) in the unshifted layout, which the sidecar names
    (frame_layout: fft). Returns the .npy's path."""
    out.mkdir(parents=True, exist_ok=True)
    p = geometry.probe
    expected = (geometry.rows, geometry.cols, p.window_px, p.window_px)
    if counts.shape != expected:
        raise ValueError(f"counts are {counts.shape}, the geometry wants {expected}")
    if truth_rad.shape != (geometry.grid.rows, geometry.grid.cols):
        raise ValueError(f"truth is {truth_rad.shape}, eval's object grid is "
                         f"{geometry.grid.rows} x {geometry.grid.cols}")
    np.save(out / f"{name}.npy", np.ascontiguousarray(counts))
    np.save(out / f"{name}-truth.npy", np.ascontiguousarray(truth_rad, dtype=np.float32))
    sidecar = {"energy_keV": p.energy_keV, "semiangle_mrad": p.semiangle_mrad,
               "scan_step_A": geometry.step_A, "detector_pixel_mrad": p.detector_pixel_mrad,
               "defocus_A": p.defocus_A, "Cs_mm": p.Cs_mm, "rotation_deg": 0.0,
               "dose_e_per_A2": dose_e_per_A2, "scan_shape": [geometry.rows, geometry.cols],
               "true_potential": f"{name}-truth.npy", "frame_layout": "fft"}
    (out / f"{name}.json").write_text(json.dumps(sidecar, indent=2) + "\n")
    (out / f"{name}.provenance.json").write_text(
        json.dumps({"layout": LAYOUT, **provenance}, indent=2) + "\n")
    return out / f"{name}.npy"


# --- specimens: ASE ------------------------------------------------------------------------------

def flake_outline(rng, geometry: Geometry, fraction: float):
    """A wavy disc over `fraction` of the scan FOV, centred near the FOV's centre, as
    (centre [y, x] in cell coordinates, radius(theta))."""
    fov = geometry.grid.fov_height_A * geometry.grid.fov_width_A
    amplitudes = rng.uniform(0.0, 0.12, 3)
    phases = rng.uniform(0, 2 * np.pi, 3)
    # area of r = R0 (1 + sum a_k cos(k theta + phi_k)), k = 2..4: pi R0^2 (1 + sum a_k^2 / 2)
    r0 = np.sqrt(fraction * fov / (np.pi * (1 + 0.5 * np.sum(amplitudes ** 2))))
    centre = geometry.abtem_positions(np.array([[geometry.grid.fov_height_A / 2,
                                                 geometry.grid.fov_width_A / 2]]))[0]
    centre = centre + rng.uniform(-1.5, 1.5, 2)

    def radius(theta):
        return r0 * (1 + sum(a * np.cos((k + 2) * theta + ph)
                             for k, (a, ph) in enumerate(zip(amplitudes, phases))))
    return centre, radius


def inside_outline(points: np.ndarray, outline) -> np.ndarray:
    centre, radius = outline
    d = np.asarray(points)[:, :2] - centre
    return np.hypot(d[:, 0], d[:, 1]) <= radius(np.arctan2(d[:, 1], d[:, 0]))


def build_atoms(kind: str, seed: int, geometry: Geometry):
    """(ASE Atoms in abTEM's cell, material mask on eval's object grid or None, description)."""
    import ase.build

    rng = np.random.default_rng([KIND_STREAMS[kind], seed])
    L = geometry.cell_A
    unit = ase.build.mx2("MoS2", kind="2H", a=MOS2_A, thickness=MOS2_THICKNESS_A,
                         vacuum=VACUUM_A)
    repeats = int(np.ceil(1.6 * L / MOS2_A)) + 2
    sheet = unit.repeat((repeats, repeats, 1))
    angle = rng.uniform(0, 60)
    sheet.rotate(angle, "z")
    shift = rng.uniform(0, MOS2_A, 2)
    sheet.positions[:, :2] += L / 2 - sheet.positions[:, :2].mean(axis=0) + shift
    xy = sheet.positions[:, :2]
    # A 1 A gap before the cell's far edges keeps atoms from overlapping their periodic images;
    # that seam is at least 4.8 A from every probe position.
    keep = np.all((xy >= 0) & (xy < L - 1.0), axis=1)
    outline = None
    if kind in FLAKE_FRACTIONS:
        outline = flake_outline(rng, geometry, FLAKE_FRACTIONS[kind])
        keep &= inside_outline(xy, outline)
    atoms = sheet[keep]
    fov_atoms = np.flatnonzero(np.all(np.abs(atoms.positions[:, :2] - L / 2) < 9.0, axis=1))
    del atoms[sorted(rng.choice(fov_atoms, VACANCIES, replace=False))]
    atoms.set_cell([L, L, MOS2_THICKNESS_A + 2 * VACUUM_A])
    atoms.pbc = True
    mask = None
    if outline is not None:
        g = geometry.grid
        yy, xx = np.meshgrid(np.arange(g.rows), np.arange(g.cols), indexing="ij")
        points = np.stack([yy.ravel(), xx.ravel()], 1) * geometry.pixel_A - geometry.cell_origin_A
        mask = inside_outline(points, outline).reshape(g.rows, g.cols)
    return atoms, mask, {"rotation_deg": float(angle), "shift_A": shift.tolist(),
                         "atoms": len(atoms), "vacancies": VACANCIES}


# --- abTEM ---------------------------------------------------------------------------------------

def configure_abtem():
    import abtem
    abtem.config.set({"device": "cpu", "fft": "fftw", "fftw.threads": 1, "dask.lazy": False,
                      "precision": "float32"})
    return abtem


def potential(atoms, geometry: Geometry):
    abtem = configure_abtem()
    thickness = atoms.cell[2, 2] / 3  # one slice per atomic plane: S, Mo, S
    return abtem.Potential(atoms, gpts=geometry.gpts, slice_thickness=thickness,
                           parametrization="lobato", projection="infinite").build().compute()


def detector_patterns(potential_array, geometry: Geometry, positions_A: np.ndarray,
                      batch: int = 200) -> np.ndarray:
    """Noise-free patterns (n, N, N), float32, in the unshifted layout, at ptypilot scan
    positions (A from the FOV origin): abTEM's multislice, its centred patterns binned to the
    detector."""
    abtem = configure_abtem()
    p = geometry.probe
    probe = abtem.Probe(energy=p.energy_keV * 1e3, semiangle_cutoff=p.semiangle_mrad,
                        defocus=p.defocus_A, Cs=p.Cs_mm * 1e7)
    probe.grid.match(potential_array)
    cell_points = geometry.abtem_positions(positions_A)
    out = np.empty((len(positions_A), p.window_px, p.window_px), np.float32)
    for first in range(0, len(cell_points), batch):
        chunk = cell_points[first:first + batch]
        waves = probe.multislice(potential_array, scan=abtem.CustomScan(chunk), lazy=False)
        centred = waves.diffraction_patterns(max_angle="full", parity="same", fftshift=True).array
        out[first:first + len(chunk)] = to_unshifted(bin_centred(centred, BIN, p.window_px))
    return out


def true_phase(potential_array, geometry: Geometry) -> np.ndarray:
    """sigma times the projected potential of the multislice's own slices, on eval's grid."""
    from abtem.core.energy import energy2sigma
    projected = np.asarray(potential_array.array).sum(axis=0).astype(np.float64)  # V*A
    on_pixel = fourier_resample(projected, geometry.cell_px)
    phase = band_limit(on_pixel, geometry.pixel_A) * energy2sigma(geometry.probe.energy_keV * 1e3)
    return cell_to_object_grid(phase, geometry).astype(np.float32)


def correlation(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a - a.mean(), b - b.mean()
    return float((a * b).sum() / np.sqrt((a * a).sum() * (b * b).sum()))


def orientation_check(geometry: Geometry) -> dict:
    """One Mo atom beside the probe, asymmetrically: abTEM's pattern minus its vacuum pattern
    against ptypilot's (forward_intensities, single slice) for the same projected potential,
    under the 8 flips and transposes of the pattern and with the scan axes swapped. The
    untransformed one must correlate best; RuntimeError otherwise."""
    import ase

    g, p = geometry.grid, geometry.probe
    scan_A = np.array([[9.0, 11.0]])     # ptypilot [y, x] from the FOV origin
    atom_A = scan_A[0] + [0.35, -0.6]    # beside it, off both axes
    cell_yx = geometry.abtem_positions(atom_A[None])[0]
    atoms = ase.Atoms("Mo", positions=[[cell_yx[0], cell_yx[1], 1.0]],
                      cell=[geometry.cell_A, geometry.cell_A, 2.0], pbc=True)
    empty = ase.Atoms(cell=atoms.cell, pbc=True)
    pot, vac = potential(atoms, geometry), potential(empty, geometry)
    swapped = scan_A[:, ::-1]
    abtem_pattern = detector_patterns(pot, geometry, np.vstack([scan_A, swapped]))
    abtem_vacuum = detector_patterns(vac, geometry, scan_A)[0]
    truth = true_phase(pot, geometry)
    ours = core.forward_intensities(p, g, truth, scan_A)[0]
    ours_vacuum = core.forward_intensities(p, g, np.zeros_like(truth), scan_A)[0]
    theirs = np.fft.fftshift(abtem_pattern[0] - abtem_vacuum)
    reference = np.fft.fftshift(ours - ours_vacuum)
    variants = {}
    for transpose in (False, True):
        for flip_rows in (False, True):
            for flip_cols in (False, True):
                t = theirs.T if transpose else theirs
                t = t[::-1] if flip_rows else t
                t = t[:, ::-1] if flip_cols else t
                # a flip of the centred pattern moves zero from n // 2 to n - 1 - n // 2
                t = np.roll(t, (int(flip_rows), int(flip_cols)), axis=(0, 1))
                variants[f"transpose={transpose},flip_rows={flip_rows},flip_cols={flip_cols}"] = \
                    correlation(t, reference)
    variants["scan axes swapped"] = correlation(
        np.fft.fftshift(abtem_pattern[1] - abtem_vacuum), reference)
    identity = "transpose=False,flip_rows=False,flip_cols=False"
    best = max(variants, key=variants.get)
    result = {"scan_A": scan_A[0].tolist(), "atom_A": atom_A.tolist(),
              "correlation_of_differences": variants, "best": best,
              "abtem_vacuum_pattern_sum": float(abtem_vacuum.sum()),
              "abtem_vs_ptypilot_vacuum_max_abs_diff":
                  float(np.abs(abtem_vacuum - ours_vacuum).max())}
    if best != identity or variants[identity] < 0.5:
        raise RuntimeError(f"abTEM's patterns do not match ptypilot's layout: {result}")
    return result


def simulate(kind: str, seed: int, geometry: Geometry, out: Path, check: dict, progress) -> Path:
    import abtem
    import ase

    name = f"abtem-{kind}-s{seed}"
    t0 = time.perf_counter()
    atoms, mask, description = build_atoms(kind, seed, geometry)
    pot = potential(atoms, geometry)
    truth = true_phase(pot, geometry)
    raster = geometry.raster_A()
    patterns = np.empty((len(raster), geometry.probe.window_px, geometry.probe.window_px),
                        np.float32)
    rows_per_batch = 5
    per = rows_per_batch * geometry.cols
    for first in range(0, len(raster), per):
        patterns[first:first + per] = detector_patterns(pot, geometry, raster[first:first + per])
        progress(f"{name}: {first + per}/{len(raster)} patterns, "
                 f"{time.perf_counter() - t0:.0f} s")
    electrons = DOSE_E_PER_A2 * geometry.step_A ** 2
    noise_seed = 1000 * KIND_STREAMS[kind] + seed
    counts = poisson_counts(patterns, electrons, noise_seed).reshape(
        geometry.rows, geometry.cols, geometry.probe.window_px, geometry.probe.window_px)
    g = geometry.grid
    r0, c0 = (int(round(o / g.pixel_A)) for o in g.fov_origin_A)
    crop = (slice(r0, r0 + int(round(g.fov_height_A / g.pixel_A)) + 1),
            slice(c0, c0 + int(round(g.fov_width_A / g.pixel_A)) + 1))
    provenance = {
        "simulator": f"abTEM {abtem.__version__} (multislice), atoms from ASE {ase.__version__}",
        "specimen": kind, "seed": seed, **description,
        "material_fraction_of_fov": None if mask is None else float(mask[crop].mean()),
        "potential": "Lobato parametrisation, infinite projection within each slice",
        "slices": int(pot.array.shape[0]), "slice_thickness_A": float(atoms.cell[2, 2] / 3),
        "cell_A": geometry.cell_A, "gpts": geometry.gpts,
        "sampling_A": geometry.cell_A / geometry.gpts,
        "cell_origin_on_object_grid_px": CELL_OFFSET_PX,
        "detector_binning": f"{BIN} x {BIN} abTEM pixels of "
                            f"{geometry.probe.detector_pixel_mrad / BIN:.4f} mrad per detector "
                            "pixel",
        "pattern_sum_mean": float(patterns.sum(axis=(1, 2)).mean()),
        "electrons_per_pattern": electrons, "noise": f"Poisson, numpy default_rng({noise_seed})",
        "truth": "sigma x abTEM's projected potential (sum of the slices), Fourier-resampled to "
                 "the object pixel, band-limited like ptypilot's truth",
        "orientation_check": check, "seconds": time.perf_counter() - t0,
    }
    path = write_dataset(out, name, counts, truth, geometry, DOSE_E_PER_A2, provenance)
    progress(f"{name}: written to {path} in {time.perf_counter() - t0:.0f} s")
    return path


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ptypilot.abtem_data",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--kinds", nargs="+", default=["mos2", "mos2-flake"],
                        choices=list(KIND_STREAMS))
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1])
    parser.add_argument("--check-only", action="store_true",
                        help="only the orientation check against ptypilot's forward model")
    args = parser.parse_args(argv)

    def progress(message):
        print(f"abtem-data: {message}", file=sys.stderr, flush=True)

    geometry = Geometry()
    check = orientation_check(geometry)
    progress("orientation check: " + json.dumps(check))
    if args.check_only:
        return 0
    for seed in args.seeds:   # seed-major, so that each kind has specimens early on
        for kind in args.kinds:
            simulate(kind, seed, geometry, args.out, check, progress)
    return 0


if __name__ == "__main__":
    sys.exit(main())
