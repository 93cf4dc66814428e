"""Image-quality metrics of the C++ core against their references.

SSIM is checked against scikit-image's structural_similarity with the Wang et al. settings, and
FRC against an independent numpy implementation written here. Run with ptypilot_core on
PYTHONPATH (the CMake build puts it in <build>/lib).
"""

import numpy as np
import pytest

import ptypilot_core as core

try:
    from skimage.metrics import structural_similarity
except ImportError:  # the FRC and error tests still run without scikit-image
    structural_similarity = None

needs_skimage = pytest.mark.skipif(structural_similarity is None,
                                   reason="scikit-image is not installed")

# The core evaluates in double but takes float32 images, so against skimage run on float64
# copies of the float32 images only summation order differs (observed up to ~1e-14).
SSIM_TOL_SAME_INPUT = 1e-10
# Against skimage on the original float64 images the float32 rounding of the input also counts
# (observed up to ~4e-9).
SSIM_TOL_FLOAT64_INPUT = 1e-6
FRC_TOL = 1e-9


def skimage_ssim(a, b, data_range):
    return structural_similarity(a, b, data_range=data_range, gaussian_weights=True, sigma=1.5,
                                 use_sample_covariance=False)


def as_float32_in_float64(image):
    return np.asarray(image, dtype=np.float32).astype(np.float64)


def phantom(rows, cols):
    """Disks, a ramp and a sharp edge: the kind of structure SSIM windows straddle."""
    y, x = np.mgrid[0:rows, 0:cols].astype(np.float64)
    image = 0.2 + 0.3 * x / cols
    for cy, cx, radius, value in [(0.3, 0.3, 0.15, 0.6), (0.7, 0.6, 0.2, -0.3),
                                  (0.5, 0.85, 0.08, 0.4)]:
        inside = (y - cy * rows) ** 2 + (x - cx * cols) ** 2 < (radius * min(rows, cols)) ** 2
        image[inside] += value
    image[:, cols // 2:] += 0.1 * np.sin(y[:, cols // 2:] / 3.0)
    return image


def image_pairs():
    rng = np.random.default_rng(20240601)
    pairs = []
    for shape in [(64, 64), (200, 200), (50, 80), (80, 50), (11, 11), (12, 13)]:
        a = rng.random(shape)
        b = a + 0.2 * rng.standard_normal(shape)
        pairs.append(pytest.param(a, b, 1.0, id=f"noise-{shape[0]}x{shape[1]}"))
    for shape in [(64, 64), (200, 200), (50, 80)]:
        clean = phantom(*shape)
        noisy = clean + 0.05 * rng.standard_normal(shape)
        pairs.append(pytest.param(clean, noisy, 1.0, id=f"phantom-{shape[0]}x{shape[1]}"))
        # A grey-level scale with a matching data range, and a blurred-looking version.
        pairs.append(pytest.param(255 * clean, 255 * (0.8 * clean + 0.1), 255.0,
                                  id=f"phantom-255-{shape[0]}x{shape[1]}"))
    return pairs


@needs_skimage
@pytest.mark.parametrize("a, b, data_range", image_pairs())
def test_ssim_matches_skimage(a, b, data_range):
    got = core.ssim(a, b, data_range)
    same_input = skimage_ssim(as_float32_in_float64(a), as_float32_in_float64(b), data_range)
    assert abs(got - same_input) < SSIM_TOL_SAME_INPUT
    assert abs(got - skimage_ssim(a, b, data_range)) < SSIM_TOL_FLOAT64_INPUT


@needs_skimage
@pytest.mark.parametrize("a, b, data_range", image_pairs()[:8])
def test_ssim_map_matches_skimage_and_averages_to_ssim(a, b, data_range):
    a32, b32 = as_float32_in_float64(a), as_float32_in_float64(b)
    _, full = structural_similarity(a32, b32, data_range=data_range, gaussian_weights=True,
                                    sigma=1.5, use_sample_covariance=False, full=True)
    border = core.SSIM_BORDER_PX
    got = core.ssim_map(a, b, data_range)
    assert got.dtype == np.float64
    assert got.shape == (a.shape[0] - 2 * border, a.shape[1] - 2 * border)
    np.testing.assert_allclose(got, full[border:-border, border:-border], rtol=0, atol=1e-10)
    # ssim() is the mean of the map; numpy sums pairwise, the core in order (~1e-15 apart).
    assert got.mean() == pytest.approx(core.ssim(a, b, data_range), abs=1e-13)


@needs_skimage
def test_ssim_accepts_other_dtypes_and_layouts():
    rng = np.random.default_rng(1)
    a = rng.integers(0, 256, size=(40, 60)).astype(np.uint8)
    b = np.clip(a + rng.integers(-20, 21, size=a.shape), 0, 255).astype(np.uint8)
    expected = skimage_ssim(a.astype(np.float64), b.astype(np.float64), 255.0)
    assert abs(core.ssim(a, b, 255.0) - expected) < SSIM_TOL_SAME_INPUT
    # Transposed (non-contiguous) views must be copied in their logical order.
    expected_t = skimage_ssim(a.T.astype(np.float64), b.T.astype(np.float64), 255.0)
    assert abs(core.ssim(a.T, b.T, 255.0) - expected_t) < SSIM_TOL_SAME_INPUT


def test_ssim_properties():
    rng = np.random.default_rng(2)
    clean = phantom(64, 64)
    assert core.ssim(clean, clean, 1.0) == pytest.approx(1.0, abs=1e-12)
    values = [core.ssim(clean, clean + s * rng.standard_normal(clean.shape), 1.0)
              for s in (0.01, 0.03, 0.1, 0.3)]
    assert all(x > y for x, y in zip(values, values[1:]))
    noisy = clean + 0.1 * rng.standard_normal(clean.shape)
    assert core.ssim(clean, noisy, 1.0) == pytest.approx(core.ssim(noisy, clean, 1.0), abs=1e-12)


@pytest.mark.parametrize("a, b, data_range", [
    (np.zeros((16, 16)), np.zeros((16, 17)), 1.0),       # mismatched shapes
    (np.zeros((10, 16)), np.zeros((10, 16)), 1.0),       # smaller than the 11x11 window
    (np.zeros((16, 16)), np.zeros((16, 16)), 0.0),       # zero data range
    (np.zeros((16, 16)), np.zeros((16, 16)), -1.0),      # negative data range
    (np.zeros((16, 16, 2)), np.zeros((16, 16, 2)), 1.0),  # not 2-D
    (np.zeros(256), np.zeros(256), 1.0),                  # not 2-D
])
def test_ssim_rejects_invalid_input(a, b, data_range):
    with pytest.raises(ValueError):
        core.ssim(a, b, data_range)


def test_ssim_rejects_nan():
    a = np.zeros((16, 16))
    b = a.copy()
    b[3, 4] = np.nan
    with pytest.raises(ValueError):
        core.ssim(a, b, 1.0)


def numpy_frc(a, b, pixel_A):
    """Reference FRC, written independently of the C++ (full complex FFT, np.round rings)."""
    n = a.shape[0]
    fa = np.fft.fft2(a)
    fb = np.fft.fft2(b)
    k = np.round(np.fft.fftfreq(n) * n)
    ky, kx = np.meshgrid(k, k, indexing="ij")
    ring = np.round(np.sqrt(ky ** 2 + kx ** 2)).astype(int)
    rings = n // 2 + 1
    keep = ring < rings
    idx = ring[keep]
    cross = np.bincount(idx, (fa * np.conj(fb)).real[keep], minlength=rings)
    power_a = np.bincount(idx, (np.abs(fa) ** 2)[keep], minlength=rings)
    power_b = np.bincount(idx, (np.abs(fb) ** 2)[keep], minlength=rings)
    count = np.bincount(idx, minlength=rings)
    den = np.sqrt(power_a * power_b)
    correlation = np.divide(cross, den, out=np.zeros(rings), where=den > 0)
    threshold = (0.2071 + 1.9102 / np.sqrt(count)) / (1.2071 + 0.9102 / np.sqrt(count))
    frequency = np.arange(rings) / (n * pixel_A)
    below = np.nonzero(correlation[1:] < threshold[1:])[0]
    resolution = 1.0 / frequency[below[0] + 1] if below.size else 2.0 * pixel_A
    return frequency, correlation, threshold, count, resolution


def frc_pairs():
    rng = np.random.default_rng(7)
    pairs = []
    for n in (64, 65, 128, 16):
        # Shared low-frequency structure plus independent noise, so the curve crosses the
        # threshold somewhere in the middle.
        base = np.real(np.fft.ifft2(np.fft.fft2(rng.standard_normal((n, n))) *
                                    np.exp(-(np.fft.fftfreq(n)[:, None] ** 2 +
                                             np.fft.fftfreq(n)[None, :] ** 2) / 0.01)))
        base /= base.std()
        a = base + 0.3 * rng.standard_normal((n, n))
        b = base + 0.3 * rng.standard_normal((n, n))
        pairs.append(pytest.param(a, b, 0.37, id=f"correlated-{n}"))
    a = phantom(96, 96)
    pairs.append(pytest.param(a, a + 0.02 * rng.standard_normal(a.shape), 1.0, id="phantom-96"))
    return pairs


@pytest.mark.parametrize("a, b, pixel_A", frc_pairs())
def test_frc_matches_numpy(a, b, pixel_A):
    got = core.frc(a, b, pixel_A)
    a32 = as_float32_in_float64(a)
    b32 = as_float32_in_float64(b)
    frequency, correlation, threshold, count, resolution = numpy_frc(a32, b32, pixel_A)

    assert set(got) == {"spatial_frequency_per_A", "correlation", "half_bit_threshold",
                        "pixels_in_ring", "resolution_A"}
    assert got["correlation"].dtype == np.float64
    assert got["pixels_in_ring"].dtype == np.int64
    np.testing.assert_array_equal(got["pixels_in_ring"], count)
    np.testing.assert_allclose(got["spatial_frequency_per_A"], frequency, rtol=1e-14, atol=0)
    np.testing.assert_allclose(got["half_bit_threshold"], threshold, rtol=1e-14, atol=0)
    assert np.max(np.abs(got["correlation"] - correlation)) < FRC_TOL
    assert got["resolution_A"] == pytest.approx(resolution, rel=1e-12)
    assert 2 * pixel_A <= got["resolution_A"] <= a.shape[0] * pixel_A


def test_frc_identical_images_reach_nyquist():
    a = np.random.default_rng(3).random((50, 50))
    got = core.frc(a, a, 0.5)
    np.testing.assert_allclose(got["correlation"], 1.0, atol=1e-12)
    assert got["resolution_A"] == pytest.approx(1.0)


@pytest.mark.parametrize("a, b, pixel_A", [
    (np.zeros((16, 20)), np.zeros((16, 20)), 1.0),  # not square
    (np.zeros((16, 16)), np.zeros((17, 17)), 1.0),  # mismatched
    (np.zeros((16, 16)), np.zeros((16, 16)), 0.0),  # no pixel size
    (np.zeros((4, 4, 4)), np.zeros((4, 4, 4)), 1.0),  # not 2-D
    (np.full((8, 8), np.inf), np.zeros((8, 8)), 1.0),  # not finite
])
def test_frc_rejects_invalid_input(a, b, pixel_A):
    with pytest.raises(ValueError):
        core.frc(a, b, pixel_A)


def test_q_ssim():
    assert core.q_ssim(0.9, 0.6) == pytest.approx(0.5)
    assert core.q_ssim(0.6, 0.6) == 0.0
    assert core.q_ssim(0.45, 0.6) == pytest.approx(-0.25)
    assert core.q_ssim(ssim_adaptive=0.8, ssim_sparse=0.5) == pytest.approx(0.6)
    with pytest.raises(ValueError):
        core.q_ssim(0.5, 0.0)
    with pytest.raises(ValueError):
        core.q_ssim(float("nan"), 0.5)
