"""FRC as the evaluations score it: the one place where two phase images are prepared for
ptypilot_core.frc, and where a resolution is read off the curve.

ptypilot_core.frc takes its images as given (kernels/include/ptypilot/metrics.hpp): it is the
plain metric, tested against numpy, and preparing the images is the caller's choice. Here they
are made mean-free (the absolute phase offset is not measurable) and apodised with one edge
window, so that the jump between opposite edges of a cropped field, which the FFT treats as
periodic, does not show up as correlated power at high frequencies. Both images get the same
window, so it weights the field, not one image against the other.
"""

from __future__ import annotations

import numpy as np

import ptypilot_core as core
from ptypilot.eval_summary import mean_std

# Fraction of each axis inside the cosine taper (half at each edge): wide enough that the
# field's edge no longer steps, narrow enough that most of the field keeps full weight.
TUKEY_ALPHA = 0.25
# Fixed thresholds read off each curve: 0.5 and 1/7 (Rosenthal & Henderson's for two
# independent half data sets; here one side is the truth, so they are conventions, not
# information limits). The half-bit curve comes with every FRC from ptypilot_core.
THRESHOLDS = {"0.5": 0.5, "1/7": 1.0 / 7.0}


def tukey(n: int, alpha: float = TUKEY_ALPHA) -> np.ndarray:
    """A Tukey (tapered cosine) window of n samples: 1 in the middle, a half Hann of
    alpha * (n - 1) / 2 samples down to 0 at each end."""
    if n < 2:
        return np.ones(n)
    x = np.arange(n) / (n - 1)
    w = np.ones(n)
    if alpha <= 0:
        return w
    edge = alpha / 2
    low = x < edge
    high = x > 1 - edge
    w[low] = 0.5 * (1 - np.cos(np.pi * x[low] / edge))
    w[high] = 0.5 * (1 - np.cos(np.pi * (1 - x[high]) / edge))
    return w


def apodise(image: np.ndarray) -> np.ndarray:
    """The image mean-free and multiplied by the separable 2-D Tukey window."""
    a = np.asarray(image, dtype=np.float64)
    a = a - a.mean()
    return a * np.outer(tukey(a.shape[0]), tukey(a.shape[1]))


def apodised_frc(image: np.ndarray, reference: np.ndarray, pixel_A: float) -> dict:
    """ptypilot_core.frc of the two images on their common top-left square, each apodised
    (apodise) on that square."""
    n = min(*image.shape, *reference.shape)
    a = apodise(image[:n, :n])
    b = apodise(reference[:n, :n])
    return core.frc(a.astype(np.float32), b.astype(np.float32), pixel_A)


def frc_resolution_A(curve: dict, threshold: float) -> tuple[float | None, bool]:
    """(resolution in Å, crossed): 1 / the first spatial frequency, from the low end, where the
    FRC falls below `threshold` after having reached it, interpolated linearly between the last
    ring above and the first below. The rings before it first reaches the threshold are
    skipped: against the truth of a crystal the lowest rings hold almost no power (ring 0, the
    mean, none at all), so their FRC is noise, and reading the first of them as the resolution
    would give the size of the field. If the curve never reaches the threshold, (None, False);
    if it never falls below it again, the Nyquist period (1 / the last ring's frequency) and
    crossed = False: the resolution is then at least that fine."""
    f = np.asarray(curve["spatial_frequency_per_A"], dtype=np.float64)
    c = np.asarray(curve["correlation"], dtype=np.float64)
    reached = np.nonzero(c[1:] >= threshold)[0]
    if len(reached) == 0:
        return None, False
    for i in range(int(reached[0]) + 2, len(c)):
        if c[i] < threshold:
            t = (c[i - 1] - threshold) / (c[i - 1] - c[i])
            return float(1.0 / (f[i - 1] + t * (f[i] - f[i - 1]))), True
    return float(1.0 / f[-1]), False


def resolutions(curve: dict) -> dict:
    """frc_resolution_A at each of THRESHOLDS: {"0.5": (Å, crossed), "1/7": ...}."""
    return {name: frc_resolution_A(curve, t) for name, t in THRESHOLDS.items()}


def resolution_summary(curves: list[dict]) -> dict:
    """Per threshold, the resolution over a strategy's data sets (mean, std, n), how many of its
    curves never fell below the threshold (their Nyquist period counts in the mean) and how
    many never reached it (they have none, and do not count)."""
    out = {}
    for name, threshold in THRESHOLDS.items():
        values = [frc_resolution_A(c, threshold) for c in curves]
        out[name] = dict(mean_std(v for v, _ in values),
                         not_crossed=sum(1 for v, crossed in values if v is not None and not crossed),
                         never_reached=sum(1 for v, _ in values if v is None))
    return out
