// The frame-geometry map (frame_geometry.hpp): layouts for even and odd sides, the disk offset,
// rotation and flip, mask, flat-field, crop and bin, and the check that warns of a wrong layout.
#include <catch2/catch.hpp>
#include <cmath>
#include <numeric>

#include "ptypilot/frame_geometry.hpp"
#include "ptypilot/optics.hpp"

using namespace ptypilot;

namespace {

std::vector<float> iota_frame(int n) {
  std::vector<float> f(std::size_t(n) * n);
  std::iota(f.begin(), f.end(), 1.0f);
  return f;
}

// A Gaussian disk of width sigma at (cy, cx) in a centred n x n frame (smooth, so band-limited).
std::vector<float> gaussian(int n, double cy, double cx, double sigma, double sigma_x = 0) {
  if (sigma_x == 0) sigma_x = sigma;
  std::vector<float> f(std::size_t(n) * n);
  for (int r = 0; r < n; ++r)
    for (int c = 0; c < n; ++c)
      f[std::size_t(r) * n + c] =
          static_cast<float>(1000.0 * std::exp(-0.5 * ((r - cy) * (r - cy) / (sigma * sigma) +
                                                       (c - cx) * (c - cx) / (sigma_x * sigma_x))));
  return f;
}

std::vector<float> apply(const FrameGeometry& g, int n, const std::vector<float>& raw) {
  const FrameGeometryMap map(g, n);
  std::vector<float> out(map.out_pixels());
  REQUIRE(map.apply(raw, out));
  return out;
}

FrameGeometryCheck::Finding find(const std::vector<float>& frame, int n, double radius) {
  FrameGeometryCheck check(n, radius);
  check.add(frame);
  return check.finding();
}

}  // namespace

TEST_CASE("a centred frame goes to the FFT layout by ifftshift, for even and odd sides",
          "[geometry]") {
  for (int n : {6, 7}) {
    INFO("side " << n);
    const std::vector<float> raw = iota_frame(n);
    FrameGeometry centred;  // the default
    REQUIRE(centred.layout == FrameLayout::kCentred);
    const std::vector<float> out = apply(centred, n, raw);
    // numpy.fft.ifftshift: the zero frequency, pixel [floor(n/2), floor(n/2)], goes to [0, 0].
    CHECK(out[0] == raw[std::size_t(n / 2) * n + n / 2]);
    for (int r = 0; r < n; ++r)
      for (int c = 0; c < n; ++c)
        CHECK(out[std::size_t(r) * n + c] ==
              raw[std::size_t((r + n / 2) % n) * n + (c + n / 2) % n]);
    // FFT-layout data named fft passes unchanged, and centred data named centred gives the same
    // reconstructor frame bit for bit.
    FrameGeometry fft;
    fft.layout = FrameLayout::kFft;
    CHECK(apply(fft, n, out) == out);
    std::vector<float> back(out.size());
    fftshift_image(out, n, n, back);
    CHECK(back == raw);
  }
  CHECK_THROWS_WITH(parse_frame_layout("shifted"), Catch::Contains("centred"));
  CHECK(parse_frame_layout("fft") == FrameLayout::kFft);
}

TEST_CASE("a geometry that only names the layout maps as the full path does", "[geometry]") {
  // Such a geometry takes a shortcut (one shift, no copies); an all-ones mask sends the same
  // frame through every step instead, which must give the same values.
  for (FrameLayout layout : {FrameLayout::kCentred, FrameLayout::kFft})
    for (int n : {6, 7, 64}) {
      INFO("side " << n << ", layout " << (layout == FrameLayout::kFft ? "fft" : "centred"));
      const std::vector<float> raw = iota_frame(n);
      FrameGeometry plain;
      plain.layout = layout;
      FrameGeometry full = plain;
      full.mask.assign(std::size_t(n) * n, 1.0f);
      CHECK(apply(plain, n, raw) == apply(full, n, raw));
    }
}

TEST_CASE("a disk offset is corrected: whole pixels by a roll, the rest by the model",
          "[geometry]") {
  const int n = 32, c = n / 2;
  FrameGeometry g;
  SECTION("integer: exact") {
    g.disk_offset_y_px = 2;
    g.disk_offset_x_px = -3;
    const std::vector<float> out = apply(g, n, gaussian(n, c + 2, c - 3, 2.5));
    const std::vector<float> ideal = apply(FrameGeometry{}, n, gaussian(n, c, c, 2.5));
    // Equal but where the roll wraps the Gaussian's far tail around the frame's edge.
    for (std::size_t i = 0; i < out.size(); ++i) CHECK(out[i] == Approx(ideal[i]).margin(1e-3));
  }
  SECTION("sub-pixel: the whole pixels are rolled, the rest is the model's probe tilt") {
    g.disk_offset_y_px = 2.7;
    g.disk_offset_x_px = -0.4;
    const std::vector<float> raw = gaussian(n, c + 2.7, c - 0.4, 2.0);
    const auto tilt = probe_tilt_px(g);
    CHECK(tilt[0] == Approx(-0.3));
    CHECK(tilt[1] == Approx(-0.4));
    const auto after = find(apply(g, n, raw), n, 6);
    CHECK(after.offset_y_px == Approx(-0.3).margin(0.01));
    CHECK(after.offset_x_px == Approx(-0.4).margin(0.01));
    // The tilt in the reconstructor's axes: a quarter turn and a bin of 2 act on it too.
    g.rotation_deg = 90;
    g.bin = 2;
    const auto turned = probe_tilt_px(g);
    // Raw (dy, dx) = (-0.3, -0.4) is M v with M v = (v_x, -v_y) at 90 degrees: v = (0.4, -0.3),
    // halved by the bin.
    CHECK(turned[0] == Approx(0.2).margin(1e-12));
    CHECK(turned[1] == Approx(-0.15).margin(1e-12));
  }
}

TEST_CASE("a probe tilt puts the model's bright-field disk off the zero frequency", "[geometry]") {
  ProbeConfig probe;
  probe.window_px = 32;
  probe.tilt_y_px = 0.7;
  probe.tilt_x_px = -0.25;
  const ComplexImage f = make_probe_fourier(probe);
  std::vector<float> intensity(f.size());
  for (std::size_t i = 0; i < f.size(); ++i) intensity[i] = std::norm(f.data()[i]);
  const auto found = find(intensity, 32, probe.semiangle_mrad / probe.detector_pixel_mrad);
  CHECK(found.offset_y_px == Approx(0.7).margin(0.02));
  CHECK(found.offset_x_px == Approx(-0.25).margin(0.02));
}

TEST_CASE(
    "scan rotation and flip: quarter turns and the transpose are permutations; other "
    "angles resample",
    "[geometry]") {
  const int n = 33, c = n / 2;
  // A blob where the scan's x axis (0, 5) appears on the detector at rotation theta:
  // (y, x) = (5 sin theta, 5 cos theta).
  for (double deg : {90.0, 12.0, -30.0}) {
    INFO("rotation " << deg);
    const double t = deg * M_PI / 180.0;
    FrameGeometry g;
    g.rotation_deg = deg;
    const auto found =
        find(apply(g, n, gaussian(n, c + 5 * std::sin(t), c + 5 * std::cos(t), 1.2)), n, 9);
    CHECK(found.offset_y_px == Approx(0.0).margin(0.02));
    CHECK(found.offset_x_px == Approx(5.0).margin(0.02));
  }
  FrameGeometry quarter;
  quarter.rotation_deg = 90;
  const std::vector<float> raw = iota_frame(n);
  const std::vector<float> turned = apply(quarter, n, raw);
  // Reconstructor pixel (0, 1) reads raw (c + 1, c).
  CHECK(turned[1] == raw[std::size_t(c + 1) * n + c]);
  FrameGeometry flip;
  flip.flip = true;
  const std::vector<float> flipped = apply(flip, n, raw);
  CHECK(flipped[1] == raw[std::size_t(c + 1) * n + c]);
  CHECK(flipped[std::size_t(n)] == raw[std::size_t(c) * n + c + 1]);
  CHECK(FrameGeometryMap(quarter, n).reconstructor_mask().empty());
  FrameGeometry tilted;
  tilted.rotation_deg = 12;
  // Pixels that read outside the frame (the corners) are left free.
  const FrameGeometryMap tilted_map(tilted, n);
  const auto& mask = tilted_map.reconstructor_mask();
  REQUIRE(mask.size() == std::size_t(n) * n);
  CHECK(mask[std::size_t(c) * n + c] == 0.0f);  // the far corner, in FFT layout
  CHECK(mask[0] == 1.0f);
}

TEST_CASE("mask and flat-field: bad pixels get weight 0, gains divide", "[geometry]") {
  const int n = 8, c = n / 2;
  FrameGeometry g;
  g.mask.assign(std::size_t(n) * n, 1.0f);
  g.flat_field.assign(std::size_t(n) * n, 2.0f);
  g.mask[std::size_t(c + 1) * n + c + 2] = 0.0f;    // a hot pixel
  g.flat_field[std::size_t(c) * n + c - 1] = 0.0f;  // a dead one, by its gain
  std::vector<float> raw(std::size_t(n) * n, 10.0f);
  raw[std::size_t(c + 1) * n + c + 2] = 1e6f;
  const FrameGeometryMap map(g, n);
  std::vector<float> out(map.out_pixels());
  REQUIRE(map.apply(raw, out));
  const auto& mask = map.reconstructor_mask();
  REQUIRE(mask.size() == out.size());
  CHECK(out[0] == 5.0f);
  CHECK(mask[0] == 1.0f);
  CHECK(out[std::size_t(1) * n + 2] == 0.0f);
  CHECK(mask[std::size_t(1) * n + 2] == 0.0f);
  CHECK(mask[std::size_t(0) * n + n - 1] == 0.0f);  // (0, -1) in FFT layout
  CHECK(std::count(mask.begin(), mask.end(), 0.0f) == 2);
  g.mask.pop_back();
  CHECK_THROWS_WITH(FrameGeometryMap(g, n), Catch::Contains("mask has 63 pixels"));
}

TEST_CASE("crop and bin keep the zero frequency at the reconstructor's [0, 0]", "[geometry]") {
  const int n = 10, c = n / 2;
  FrameGeometry g;
  g.crop_px = 8;
  g.bin = 2;
  std::vector<float> raw(std::size_t(n) * n, 1.0f);
  raw[std::size_t(c) * n + c] = 100.0f;
  const FrameGeometryMap map(g, n);
  REQUIRE(map.out_side() == 4);
  std::vector<float> out(16);
  REQUIRE(map.apply(raw, out));
  CHECK(out[0] == 103.0f);
  CHECK(std::accumulate(out.begin(), out.end(), 0.0f) == 64.0f + 99.0f);
  g.bin = 3;
  CHECK_THROWS_WITH(FrameGeometryMap(g, n), Catch::Contains("bin 3 does not divide"));
}

TEST_CASE("the check names a wrong layout and measures the disk's centre of mass", "[geometry]") {
  const int n = 32, c = n / 2;
  const std::vector<float> disk = gaussian(n, c, c, 2.0);
  FrameGeometry fft;
  fft.layout = FrameLayout::kFft;
  FrameGeometryCheck wrong(n, 5), right(n, 5), off(n, 5);
  wrong.add(apply(fft, n, disk));  // centred frames named fft
  right.add(apply(FrameGeometry{}, n, disk));
  off.add(apply(FrameGeometry{}, n, gaussian(n, c + 0.7, c, 2.0)));
  REQUIRE(wrong.warning());
  CHECK(wrong.warning()->code == "frame_layout_mismatch");
  CHECK(wrong.finding().near_zero < 0.01);
  CHECK(!right.warning());
  CHECK(right.finding().near_zero > 0.9);
  // An off-centre disk is measured; whether that is wrong is for check_disk on the raw frames
  // (test_calibration.cpp), which knows the configured offset.
  CHECK(!off.warning());
  CHECK(off.finding().offset_y_px == Approx(0.7).margin(0.01));
  CHECK(off.finding().offset_x_px == Approx(0.0).margin(0.01));
  // Flat frames hold no disk: nothing to say about the layout, whichever way the noise leans.
  FrameGeometryCheck flat(n, 5);
  std::vector<float> frame(std::size_t(n) * n, 10.0f);
  frame[std::size_t(c) * n + c] = 11.0f;  // a little more near where the other layout's disk is
  flat.add(frame);
  CHECK(flat.finding().near_centre > flat.finding().near_zero);
  CHECK(!flat.warning());
}

TEST_CASE("Keys' cubic weights: sum 1, exact at the nodes, reproduce quadratics", "[geometry]") {
  double w[4];
  keys_cubic_weights(0.0, w);
  CHECK(w[0] == 0.0);
  CHECK(w[1] == 1.0);
  CHECK(w[2] == 0.0);
  CHECK(w[3] == 0.0);
  for (double t : {0.1, 0.25, 0.5, 0.7, 0.99}) {
    INFO("t " << t);
    keys_cubic_weights(t, w);
    double sum = 0, linear = 0, quadratic = 0;
    for (int i = 0; i < 4; ++i) {
      const double x = i - 1;  // the pixel's place from floor(x)
      sum += w[i];
      linear += w[i] * x;
      quadratic += w[i] * x * x;
    }
    CHECK(sum == Approx(1.0).margin(1e-12));
    CHECK(linear == Approx(t).margin(1e-12));
    CHECK(quadratic == Approx(t * t).margin(1e-12));
  }
}

TEST_CASE("a rotation by another angle reads a smooth pattern at the rotated points",
          "[geometry]") {
  // A quadratic pattern, f(y, x) = 200 + 3y - 2x + 0.05 (y^2 + x y), is reproduced exactly by the
  // cubic kernel where its 4 x 4 pixels lie inside the frame (bilinear would be off by up to
  // 0.05 * 0.25 * 2 per pixel). Reconstructor pixel k reads raw c + d + R k.
  const int n = 33, c = n / 2;
  auto f = [](double y, double x) { return 200 + 3 * y - 2 * x + 0.05 * (y * y + x * y); };
  std::vector<float> raw(std::size_t(n) * n);
  for (int r = 0; r < n; ++r)
    for (int col = 0; col < n; ++col) raw[std::size_t(r) * n + col] = float(f(r - c, col - c));
  FrameGeometry g;
  g.rotation_deg = 12;
  g.disk_offset_y_px = 1.0;  // whole pixels: no tilt, all in the map
  g.disk_offset_x_px = -2.0;
  const std::vector<float> out = apply(g, n, raw);
  const double t = 12 * M_PI / 180;
  double worst = 0;
  for (int ky = -5; ky <= 5; ++ky)
    for (int kx = -5; kx <= 5; ++kx) {
      const double sy = kx * std::sin(t) + ky * std::cos(t), sx = kx * std::cos(t) - ky * std::sin(t);
      const double expected = f(1.0 + sy, -2.0 + sx);
      const int r = ((ky % n) + n) % n, col = ((kx % n) + n) % n;  // FFT layout
      worst = std::max(worst, std::abs(out[std::size_t(r) * n + col] - expected));
    }
  CHECK(worst < 1e-3);
}
