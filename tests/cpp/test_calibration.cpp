// Calibration from the data (calibration.hpp): a simulated raster over graphene, its frames
// distorted by a known disk offset, scan rotation and flip (the inverse of the frame geometry's
// map), is calibrated back; the calibrated geometry undoes the distortion; the live check warns
// and refuses.
#include <catch2/catch.hpp>

#include <cmath>
#include <numbers>
#include <vector>

#include "ptypilot/calibration.hpp"
#include "ptypilot/frame_geometry.hpp"
#include "ptypilot/presets.hpp"
#include "ptypilot/simulator.hpp"

using namespace ptypilot;

namespace {

constexpr int kScan = 24;  // 24 x 24 positions

struct Raster {
  int side = 0;  // frame pixels per side
  double expected_radius_px = 0;
  ScanRaster raster;
  std::vector<Vec2> positions;
  std::vector<float> centred;  // undistorted frames, centred view
};

// Noise-free frames of graphene-small on a 24 x 24 raster at its 0.3 A step, centred, at a
// count scale of 4000 electrons per frame. Made once: the cases share them.
const Raster& raster() {
  static const Raster r = [] {
    const sim::ExperimentPreset& preset = sim::experiment_preset("graphene-small");
    const sim::SimulatedSpecimen specimen = sim::simulate_specimen(preset, 5);
    Raster out;
    out.side = preset.probe.detector_side_px();
    out.expected_radius_px = preset.probe.semiangle_mrad / preset.probe.detector_pixel_mrad;
    out.raster = {kScan, kScan, preset.step_A};
    for (int i = 0; i < kScan; ++i)
      for (int j = 0; j < kScan; ++j) out.positions.push_back({i * preset.step_A, j * preset.step_A});
    sim::FrameSimulator simulator(specimen, 0.0, 1);
    const std::size_t pixels = std::size_t(out.side) * out.side;
    std::vector<float> fft(out.positions.size() * pixels);
    REQUIRE(simulator.frames(out.positions, fft).ok());
    out.centred.resize(fft.size());
    for (std::size_t p = 0; p < out.positions.size(); ++p) {
      std::span<const float> in(fft.data() + p * pixels, pixels);
      std::span<float> o(out.centred.data() + p * pixels, pixels);
      fftshift_image(in, out.side, out.side, o);
      for (float& v : o) v *= 4000.0f;
    }
    return out;
  }();
  return r;
}

// What a detector with this geometry records: raw pixel c + d + F R k holds the undistorted
// pixel c + k (frame_geometry.hpp's map, inverted), so raw p reads c + R(-theta) F (p - c - d),
// bilinearly (this test's own distortion; the map resamples with a cubic).
std::vector<float> distort(std::span<const float> centred, int n, double dy, double dx,
                           double rotation_deg, bool flip) {
  const double theta = rotation_deg * std::numbers::pi / 180.0;
  const double cs = std::cos(theta), sn = std::sin(theta);
  const int c0 = n / 2;
  std::vector<float> raw(std::size_t(n) * n, 0.0f);
  for (int r = 0; r < n; ++r)
    for (int c = 0; c < n; ++c) {
      double vy = r - c0 - dy, vx = c - c0 - dx;
      if (flip) std::swap(vy, vx);
      // R(-theta) on (x, y): x' = x cos + y sin, y' = -x sin + y cos.
      const double ky = -vx * sn + vy * cs, kx = vx * cs + vy * sn;
      const double py = c0 + ky, px = c0 + kx;
      const int y0 = int(std::floor(py)), x0 = int(std::floor(px));
      const double fy = py - y0, fx = px - x0;
      double v = 0;
      for (int a = 0; a < 2; ++a)
        for (int b = 0; b < 2; ++b) {
          const int y = y0 + a, x = x0 + b;
          if (y < 0 || y >= n || x < 0 || x >= n) continue;
          v += (a ? fy : 1 - fy) * (b ? fx : 1 - fx) * centred[std::size_t(y) * n + x];
        }
      raw[std::size_t(r) * n + c] = float(v);
    }
  return raw;
}

struct Distorted {
  std::vector<float> frames;
  Calibration calibration;
};

Distorted calibrate_distorted(double dy, double dx, double rotation_deg, bool flip) {
  const Raster& r = raster();
  const std::size_t pixels = std::size_t(r.side) * r.side;
  Distorted d;
  d.frames.resize(r.centred.size());
  for (std::size_t p = 0; p < r.positions.size(); ++p) {
    const std::vector<float> raw = distort({r.centred.data() + p * pixels, pixels}, r.side, dy, dx,
                                           rotation_deg, flip);
    std::copy(raw.begin(), raw.end(), d.frames.begin() + std::ptrdiff_t(p * pixels));
  }
  const auto nodes = raster_nodes(r.positions, r.raster);
  d.calibration = calibrate(
      r.positions.size(), r.side, FrameLayout::kCentred,
      [&](std::size_t i, std::span<float> out) {
        std::copy_n(d.frames.begin() + std::ptrdiff_t(i * pixels), pixels, out.begin());
        return true;
      },
      nodes, kScan, kScan, r.expected_radius_px);
  return d;
}

double angle_error_deg(double a, double b) {
  const double d = std::fmod(std::abs(a - b), 360.0);
  return std::min(d, 360.0 - d);
}

void check_recovers(double dy, double dx, double rotation_deg, bool flip) {
  const Distorted d = calibrate_distorted(dy, dx, rotation_deg, flip);
  const Calibration& c = d.calibration;
  INFO("true offset (" << dy << ", " << dx << "), rotation " << rotation_deg << ", flip " << flip
                       << "; measured (" << c.disk.offset_y_px << ", " << c.disk.offset_x_px
                       << "), radius " << c.disk.radius_px << " of " << c.expected_radius_px
                       << ", rotation " << c.rotation.rotation_deg << ", flip " << c.rotation.flip
                       << ", curl residual " << c.rotation.curl_residual << " (other flip "
                       << c.rotation.other_flip_curl_residual << "), phase-dark field correlation "
                       << c.rotation.phase_dark_field_correlation);
  CHECK(std::abs(c.disk.offset_y_px - dy) < 0.2);
  CHECK(std::abs(c.disk.offset_x_px - dx) < 0.2);
  CHECK(std::abs(c.radius_disagreement) < 0.03);
  CHECK(c.rotation.flip == flip);
  CHECK(angle_error_deg(c.rotation.rotation_deg, rotation_deg) < 1.0);
  CHECK(c.rotation.curl_residual < 0.5 * c.rotation.other_flip_curl_residual);
  CHECK(c.rotation.phase_dark_field_correlation > 0.5);  // the branch was a clear choice
  CHECK(c.frames_on_grid == std::size_t(kScan * kScan));
  CHECK(c.geometry.rotation_deg == c.rotation.rotation_deg);
  CHECK(c.geometry.disk_offset_y_px == c.disk.offset_y_px);
}

}  // namespace

TEST_CASE("calibration finds the disk offset, radius, scan rotation and flip it was given",
          "[calibration]") {
  SECTION("none") { check_recovers(0.0, 0.0, 0.0, false); }
  SECTION("12 degrees, off-centre") { check_recovers(1.3, -2.6, 12.0, false); }
  SECTION("100 degrees, flipped") { check_recovers(-0.4, 0.7, 100.0, true); }
  SECTION("the 180-degree branch: 192 degrees is not 12") { check_recovers(0.6, 1.1, 192.0, false); }
  SECTION("flipped at 280 degrees") { check_recovers(2.2, 0.3, 280.0, true); }
}

TEST_CASE("the closed-form curl minimum is the minimum of a 1-degree sweep", "[calibration]") {
  const Raster& r = raster();
  const std::size_t pixels = std::size_t(r.side) * r.side;
  ComField field;
  field.rows = field.cols = kScan;
  field.y.resize(kScan * kScan);
  field.x.resize(kScan * kScan);
  field.dark_field.resize(kScan * kScan);
  field.measured.assign(kScan * kScan, 1);
  const double c0 = r.side / 2;
  for (std::size_t p = 0; p < r.positions.size(); ++p) {
    const std::vector<float> raw =
        distort({r.centred.data() + p * pixels, pixels}, r.side, 0, 0, 37.0, true);
    const auto com = centre_of_mass(raw, r.side, c0, c0);
    field.y[p] = com[0];
    DiskMeasurement disk;
    disk.centre_y_px = disk.centre_x_px = c0;
    disk.radius_px = r.expected_radius_px;
    field.dark_field[p] = dark_field_fraction(raw, r.side, disk);
    field.x[p] = com[1];
  }
  const RotationFit fit = fit_scan_rotation(field);
  double swept_best = 1e9, swept_angle = 0;
  for (int deg = 0; deg < 360; ++deg) {
    const double residual = curl_residual(field, deg, true);
    if (residual < swept_best) swept_best = residual, swept_angle = deg;
  }
  CHECK(fit.curl_residual <= swept_best + 1e-12);
  // The sweep finds theta or theta + 180 (the curl does not tell them apart).
  CHECK(std::min(angle_error_deg(swept_angle, fit.rotation_deg),
                 angle_error_deg(swept_angle, fit.rotation_deg + 180)) <= 0.5 + 1e-9);
  CHECK(curl_residual(field, fit.rotation_deg + 180, true) ==
        Approx(fit.curl_residual).margin(1e-12));
}

TEST_CASE("the calibrated geometry undoes the distortion", "[calibration]") {
  // Whole-pixel offset: the map rolls it exactly (a sub-pixel rest would go to the model's tilt,
  // not to the pixels). What remains is the two resamplings' smoothing (the distortion's bilinear,
  // the map's cubic).
  const Distorted d = calibrate_distorted(2.0, -3.0, 12.0, true);
  const Raster& r = raster();
  const std::size_t pixels = std::size_t(r.side) * r.side;
  FrameGeometry calibrated = d.calibration.geometry;
  INFO("calibrated offset (" << calibrated.disk_offset_y_px << ", " << calibrated.disk_offset_x_px
                             << "), rotation " << calibrated.rotation_deg);
  REQUIRE(std::round(calibrated.disk_offset_y_px) == 2.0);
  REQUIRE(std::round(calibrated.disk_offset_x_px) == -3.0);
  // The interpolation's own error: the same frames mapped with the true geometry.
  FrameGeometry truth;
  truth.disk_offset_y_px = 2.0;
  truth.disk_offset_x_px = -3.0;
  truth.rotation_deg = 12.0;
  truth.flip = true;
  const FrameGeometryMap corrected(calibrated, r.side), exact(truth, r.side),
      identity(FrameGeometry{}, r.side);
  std::vector<float> out(pixels), ideal(pixels), reference(pixels), uncorrected(pixels);
  double err_corrected = 0, err_interpolation = 0, err_uncorrected = 0, norm = 0;
  auto squared = [](float a, float b) { return double(a - b) * double(a - b); };
  for (std::size_t p = 0; p < r.positions.size(); p += 7) {
    const std::span<const float> raw(d.frames.data() + p * pixels, pixels);
    REQUIRE(corrected.apply(raw, out));
    REQUIRE(exact.apply(raw, reference));
    REQUIRE(identity.apply(raw, uncorrected));
    REQUIRE(identity.apply({r.centred.data() + p * pixels, pixels}, ideal));
    for (std::size_t i = 0; i < pixels; ++i) {
      err_corrected += squared(out[i], ideal[i]);
      err_interpolation += squared(reference[i], ideal[i]);
      err_uncorrected += squared(uncorrected[i], ideal[i]);
      norm += double(ideal[i]) * ideal[i];
    }
  }
  const double corrected_error = std::sqrt(err_corrected / norm);
  const double interpolation_error = std::sqrt(err_interpolation / norm);
  const double uncorrected_error = std::sqrt(err_uncorrected / norm);
  INFO("relative L2 difference from the undistorted frames: calibrated " << corrected_error
       << ", true geometry " << interpolation_error << ", uncorrected " << uncorrected_error);
  // Two resamplings of a pattern with a one-pixel disk edge smooth it by ~9 % (11 % when the map
  // was bilinear too); the calibrated geometry adds almost nothing to that.
  CHECK(interpolation_error < 0.10);
  CHECK(corrected_error < interpolation_error + 0.01);
  CHECK(uncorrected_error > 0.5);
}

TEST_CASE("calibration says what is missing: no disk, too few positions", "[calibration]") {
  const int n = 32;
  std::vector<float> flat(std::size_t(n) * n, 5.0f);
  const std::vector<std::array<int, 2>> nodes(36, {0, 0});
  auto read_flat = [&](std::size_t, std::span<float> out) {
    std::copy(flat.begin(), flat.end(), out.begin());
    return true;
  };
  CHECK_THROWS_WITH(calibrate(36, n, FrameLayout::kCentred, read_flat, nodes, 6, 6, 5.0),
                    Catch::Contains("no bright-field disk"));

  // A disk, but only a 4 x 4 raster: 9 cells.
  const Raster& r = raster();
  const std::size_t pixels = std::size_t(r.side) * r.side;
  std::vector<std::array<int, 2>> few;
  std::vector<std::size_t> frames;
  for (int i = 0; i < 4; ++i)
    for (int j = 0; j < 4; ++j) {
      few.push_back({i, j});
      frames.push_back(std::size_t(i) * kScan + j);
    }
  auto read_few = [&](std::size_t k, std::span<float> out) {
    std::copy_n(r.centred.begin() + std::ptrdiff_t(frames[k] * pixels), pixels, out.begin());
    return true;
  };
  CHECK_THROWS_WITH(calibrate(16, r.side, FrameLayout::kCentred, read_few, few, 4, 4,
                              r.expected_radius_px),
                    Catch::Contains("9 grid cells") && Catch::Contains("at least 16"));
}

TEST_CASE("scattered positions: on-raster nodes are used, the rest left out", "[calibration]") {
  const ScanRaster raster{4, 5, 0.5};
  const std::vector<Vec2> positions = {{0, 0}, {0.5, 1.0}, {0.6, 1.0}, {0.3, 0.3}, {1.5, 2.0}, {2.0, 0}};
  const auto nodes = raster_nodes(positions, raster);
  CHECK(nodes[0] == std::array<int, 2>{0, 0});
  CHECK(nodes[1] == std::array<int, 2>{1, 2});
  CHECK(nodes[2] == std::array<int, 2>{1, 2});  // 0.2 steps off: snapped
  CHECK(nodes[3] == std::array<int, 2>{-1, -1});  // between nodes
  CHECK(nodes[4] == std::array<int, 2>{3, 4});
  CHECK(nodes[5] == std::array<int, 2>{-1, -1});  // beyond the raster
}

TEST_CASE("the live disk check agrees, warns and refuses", "[calibration][geometry]") {
  const Raster& r = raster();
  const std::size_t pixels = std::size_t(r.side) * r.side;
  auto mean_of = [&](double dy, double dx) {
    MeanPattern mean(r.side, FrameLayout::kCentred);
    for (std::size_t p = 0; p < 50; ++p)
      mean.add(distort({r.centred.data() + p * pixels, pixels}, r.side, dy, dx, 0, false));
    return mean.mean();
  };
  const DiskCheckTolerances tol;
  FrameGeometry configured;
  configured.disk_offset_y_px = 1.5;
  configured.disk_offset_x_px = -1.0;
  const std::vector<double> there = mean_of(1.5, -1.0);

  const DiskCheckVerdict agrees = check_disk(there, r.side, configured, r.expected_radius_px, tol);
  INFO(agrees.message);
  CHECK(agrees.kind == DiskCheckVerdict::Kind::kAgrees);

  const DiskCheckVerdict off = check_disk(mean_of(1.5, 0.0), r.side, configured,
                                          r.expected_radius_px, tol);
  CHECK(off.kind == DiskCheckVerdict::Kind::kWarn);
  CHECK(off.code == "frame_disk_off_centre");
  CHECK(off.offset_error_px == Approx(1.0).margin(0.1));
  CHECK_THAT(off.message, Catch::Contains("ptypilot calibrate"));

  const DiskCheckVerdict radius = check_disk(there, r.side, configured, 1.2 * r.expected_radius_px, tol);
  CHECK(radius.kind == DiskCheckVerdict::Kind::kWarn);
  CHECK(radius.code == "frame_disk_radius_disagrees");

  const DiskCheckVerdict wrong_optics =
      check_disk(there, r.side, configured, 2.5 * r.expected_radius_px, tol);
  CHECK(wrong_optics.kind == DiskCheckVerdict::Kind::kRefuse);
  CHECK(wrong_optics.code == "frame_geometry_refused");

  const DiskCheckVerdict far = check_disk(mean_of(-4.0, 3.0), r.side, configured,
                                          r.expected_radius_px, tol);
  CHECK(far.kind == DiskCheckVerdict::Kind::kRefuse);

  const std::vector<double> dark(pixels, 3.0);
  const DiskCheckVerdict none = check_disk(dark, r.side, configured, r.expected_radius_px, tol);
  CHECK(none.kind == DiskCheckVerdict::Kind::kRefuse);
  CHECK_THAT(none.message, Catch::Contains("no bright-field disk"));
}
