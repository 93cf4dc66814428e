// Scan rotation in the positions (scan_rotation.hpp): the detector-aligned grid (the turned
// FOV's bounding box), the position transform's signs against frame_geometry.hpp's convention,
// the bicubic turn-back of images, the frame geometry's split of the rotation between frames
// (quarter turns) and positions (the rest), and the wrapped reconstructor's scan-axis snapshot.
#include <catch2/catch.hpp>
#include <cmath>
#include <numbers>
#include <numeric>

#include "ptypilot/core/config.hpp"
#include "ptypilot/frame_geometry.hpp"
#include "ptypilot/optics.hpp"
#include "ptypilot/reconstructor.hpp"
#include "ptypilot/scan_rotation.hpp"

using namespace ptypilot;

namespace {

constexpr int kWindow = 16;

ObjectGrid scan_grid(double height_A = 6.0, double width_A = 9.0) {
  return object_grid_for_fov(height_A, width_A, 0.15, kWindow, 2);
}

// A smooth function of the scan position (Angstrom from the scan FOV's origin).
double smooth(Vec2 s) {
  return std::sin(0.9 * s.y + 0.3) * std::cos(0.6 * s.x - 0.2) + 0.05 * s.x;
}

}  // namespace

TEST_CASE("scan rotation: the detector grid is the turned FOV's bounding box", "[scan_rotation]") {
  const ObjectGrid g = scan_grid();
  const ScanRotation none(0.0, g, kWindow);
  CHECK(none.detector_grid().rows == g.rows);
  CHECK(none.detector_grid().cols == g.cols);
  CHECK(none.detector_grid().fov_origin_A.y == g.fov_origin_A.y);

  const ScanRotation quarter(90.0, g, kWindow);
  CHECK(quarter.detector_grid().fov_height_A == Approx(g.fov_width_A));
  CHECK(quarter.detector_grid().fov_width_A == Approx(g.fov_height_A));

  const double t = 12.0 * std::numbers::pi / 180.0;
  const ScanRotation turned(12.0, g, kWindow);
  const ObjectGrid& d = turned.detector_grid();
  CHECK(d.fov_height_A == Approx(9.0 * std::sin(t) + 6.0 * std::cos(t)));
  CHECK(d.fov_width_A == Approx(9.0 * std::cos(t) + 6.0 * std::sin(t)));
  CHECK(d.pixel_A == g.pixel_A);
  CHECK(d.fov_origin_A.y == g.fov_origin_A.y);  // the same window and margin
  // Every corner of the scan's FOV lands inside the detector grid's FOV, two on its edges.
  for (Vec2 corner : {Vec2{0, 0}, Vec2{6, 0}, Vec2{0, 9}, Vec2{6, 9}}) {
    const Vec2 p = turned.to_detector(corner);
    CHECK(p.y >= 0);
    CHECK(p.x >= 0);
    CHECK(p.y <= d.fov_height_A);
    CHECK(p.x <= d.fov_width_A);
  }
  CHECK_THROWS(ScanRotation(std::nan(""), g, kWindow));
}

TEST_CASE("scan rotation: positions turn by R about the FOV centre, as frame geometry's R",
          "[scan_rotation]") {
  const ObjectGrid g = scan_grid();
  const Vec2 centre{3.0, 4.5};
  SECTION("the centre stays the centre") {
    const ScanRotation r(12.0, g, kWindow);
    const Vec2 p = r.to_detector(centre);
    CHECK(p.y == Approx(r.detector_grid().fov_height_A / 2));
    CHECK(p.x == Approx(r.detector_grid().fov_width_A / 2));
  }
  SECTION("signs: R rotates (x, y) by the angle, x' = x cos - y sin, y' = x sin + y cos") {
    // frame_geometry.cpp: reconstructor pixel k reads raw pixel c + R k with
    // sy = kx sin + ky cos, sx = kx cos - ky sin. The same R on positions: at +90 degrees a
    // step along the scan's x is a step along the detector grid's +y.
    const ScanRotation r(90.0, g, kWindow);
    const Vec2 c = r.to_detector(centre);
    const Vec2 along_x = r.to_detector({centre.y, centre.x + 1.0});
    CHECK(along_x.y - c.y == Approx(1.0));
    CHECK(along_x.x - c.x == Approx(0.0).margin(1e-12));
    const Vec2 along_y = r.to_detector({centre.y + 1.0, centre.x});
    CHECK(along_y.y - c.y == Approx(0.0).margin(1e-12));
    CHECK(along_y.x - c.x == Approx(-1.0));

    const double t = 12.0 * std::numbers::pi / 180.0;
    const ScanRotation twelve(12.0, g, kWindow);
    const Vec2 c12 = twelve.to_detector(centre);
    const Vec2 p = twelve.to_detector({centre.y + 0.5, centre.x + 1.0});
    CHECK(p.y - c12.y == Approx(1.0 * std::sin(t) + 0.5 * std::cos(t)));
    CHECK(p.x - c12.x == Approx(1.0 * std::cos(t) - 0.5 * std::sin(t)));
  }
  SECTION("to_scan inverts to_detector") {
    const ScanRotation r(-33.0, g, kWindow);
    for (Vec2 s : {Vec2{0.3, 0.1}, Vec2{5.9, 8.7}, Vec2{2.0, 6.0}}) {
      const Vec2 back = r.to_scan(r.to_detector(s));
      CHECK(back.y == Approx(s.y).margin(1e-12));
      CHECK(back.x == Approx(s.x).margin(1e-12));
    }
  }
}

TEST_CASE("scan rotation: images turn back onto the scan grid", "[scan_rotation]") {
  const ObjectGrid g = scan_grid();
  const ScanRotation r(12.0, g, kWindow);
  const ObjectGrid& d = r.detector_grid();
  // o'(r') = o(R^-1 r'), sampled on the detector grid; its turn-back must be o on the scan grid.
  RealImage turned(d.rows, d.cols);
  for (int i = 0; i < d.rows; ++i)
    for (int j = 0; j < d.cols; ++j)
      turned(i, j) = float(smooth(r.to_scan({i * d.pixel_A - d.fov_origin_A.y,
                                             j * d.pixel_A - d.fov_origin_A.x})));
  const RealImage back = r.to_scan_image(turned);
  REQUIRE(back.rows() == g.rows);
  REQUIRE(back.cols() == g.cols);
  double worst = 0;
  for (int i = 0; i < g.rows; ++i)
    for (int j = 0; j < g.cols; ++j) {
      const Vec2 s{i * g.pixel_A - g.fov_origin_A.y, j * g.pixel_A - g.fov_origin_A.x};
      if (s.y < 0 || s.x < 0 || s.y > g.fov_height_A || s.x > g.fov_width_A) continue;
      worst = std::max(worst, std::abs(back(i, j) - smooth(s)));
    }
  CHECK(worst < 2e-3);  // bicubic on a function varying over ~7 px

  // There and back: a smooth scan image through the detector grid and back.
  RealImage image(g.rows, g.cols);
  for (int i = 0; i < g.rows; ++i)
    for (int j = 0; j < g.cols; ++j)
      image(i, j) = float(smooth({i * g.pixel_A - g.fov_origin_A.y,
                                  j * g.pixel_A - g.fov_origin_A.x}));
  const RealImage round_trip = r.to_scan_image(r.to_detector_image(image));
  worst = 0;
  for (int i = kWindow / 2 + 2; i < g.rows - kWindow / 2 - 2; ++i)
    for (int j = kWindow / 2 + 2; j < g.cols - kWindow / 2 - 2; ++j)
      worst = std::max(worst, double(std::abs(round_trip(i, j) - image(i, j))));
  CHECK(worst < 4e-3);

  // A quarter turn on pixel centres is exact.
  const ObjectGrid square = scan_grid(6.0, 6.0);
  const ScanRotation q(90.0, square, kWindow);
  RealImage ramp(square.rows, square.cols);
  std::iota(ramp.data(), ramp.data() + ramp.size(), 0.0f);
  const RealImage q_back = q.to_scan_image(q.to_detector_image(ramp));
  for (std::size_t k = 0; k < ramp.size(); ++k) REQUIRE(q_back.data()[k] == Approx(ramp.data()[k]));
}

TEST_CASE("bicubic sampling interpolates and reproduces quadratics", "[scan_rotation]") {
  RealImage img(8, 8);
  for (int i = 0; i < 8; ++i)
    for (int j = 0; j < 8; ++j) img(i, j) = float(0.5 * i * i - 0.25 * i * j + 2 * j);
  CHECK(bicubic_sample(img, 3, 4) == Approx(img(3, 4)));
  const double y = 3.37, x = 4.81;
  CHECK(bicubic_sample(img, y, x) == Approx(0.5 * y * y - 0.25 * y * x + 2 * x).epsilon(1e-5));
}

TEST_CASE("frame geometry: with rotation_in_positions the frames get only quarter turns",
          "[scan_rotation][frame_geometry]") {
  FrameGeometry g;
  g.rotation_deg = 12.0;
  CHECK(frame_rotation_deg(g) == 12.0);
  CHECK(position_rotation_deg(g) == 0.0);
  g.rotation_in_positions = true;
  CHECK(frame_rotation_deg(g) == 0.0);
  CHECK(position_rotation_deg(g) == 12.0);
  g.rotation_deg = 348.0;
  CHECK(frame_rotation_deg(g) == 360.0);
  CHECK(position_rotation_deg(g) == Approx(-12.0));
  g.rotation_deg = 100.0;
  CHECK(frame_rotation_deg(g) == 90.0);
  CHECK(position_rotation_deg(g) == Approx(10.0));

  SECTION("12 degrees: the frames are not resampled, only the layout and the whole pixels move") {
    const int n = 16;
    g.rotation_deg = 12.0;
    g.disk_offset_y_px = 0.7;  // rolled by 1, the -0.3 left to the model, not turned
    std::vector<float> raw(std::size_t(n) * n);
    std::iota(raw.begin(), raw.end(), 1.0f);
    std::vector<float> out(raw.size()), expected(raw.size()), rolled(raw.size());
    REQUIRE(FrameGeometryMap(g, n).apply(raw, out));
    for (int r = 0; r < n; ++r)
      for (int c = 0; c < n; ++c) rolled[std::size_t(r) * n + c] = raw[std::size_t((r + 1) % n) * n + c];
    ifftshift_image(rolled, n, n, expected);
    CHECK(out == expected);
    const auto tilt = probe_tilt_px(g);
    CHECK(tilt[0] == Approx(-0.3));
    CHECK(tilt[1] == Approx(0.0).margin(1e-12));
    g.flip = true;  // the flip is exact too; the tilt is transposed with the frame
    const auto flipped = probe_tilt_px(g);
    CHECK(flipped[0] == Approx(0.0).margin(1e-12));
    CHECK(flipped[1] == Approx(-0.3));
  }
}

TEST_CASE("make_reconstructor: a scan rotation reconstructs on the detector grid, reports in "
          "scan axes", "[scan_rotation]") {
  ReconstructorConfig c;
  c.backend = "cpu";
  c.threads = 1;
  c.probe.window_px = 32;
  c.object = object_grid_for_fov(3.0, 3.0, real_space_pixel_A(c.probe), c.probe.window_px, 2);
  c.scan_rotation_deg = 12.0;
  auto r = make_reconstructor(c);
  const Potential p = r->snapshot();
  CHECK(p.grid.rows == c.object.rows);
  CHECK(p.grid.cols == c.object.cols);
  CHECK(p.phase_rad.rows() == c.object.rows);
  CHECK(r->set_potential(RealImage(c.object.rows, c.object.cols, 0.1f)).ok());
  const Potential warm = r->snapshot();
  CHECK(warm.phase_rad(c.object.rows / 2, c.object.cols / 2) == Approx(0.1f));
  // A position outside the scan's FOV is refused, as unrotated.
  std::vector<float> counts(std::size_t(c.probe.detector_side_px()) * c.probe.detector_side_px(), 1.0f);
  const Frame outside{0, {4.0, 1.0}, counts};
  CHECK_FALSE(r->add_frames(std::span<const Frame>(&outside, 1)).ok());
  const Frame inside{0, {1.5, 1.5}, counts};
  CHECK(r->add_frames(std::span<const Frame>(&inside, 1)).ok());
}

TEST_CASE("serve config: sessions leave the rotation beyond quarter turns to the positions",
          "[scan_rotation][config]") {
  nlohmann::json j = {{"session", {{"preset", "graphene-small"}}}};
  const ObjectGrid plain = parse_serve_config(j).reconstructor_config().object;
  auto turned = [&](double degrees, bool flip) {
    nlohmann::json k = j;
    k["detector"]["geometry"] = {{"rotation_deg", degrees}, {"flip", flip},
                                 {"disk_offset_y_px", 0.7}};
    return parse_serve_config(k);
  };
  for (double degrees : {12.0, 100.0, 90.0, 348.0}) {
    const ServeConfig c = turned(degrees, false);
    const ReconstructorConfig r = c.reconstructor_config();
    const FrameGeometry g = c.frame_geometry();
    INFO("rotation " << degrees);
    CHECK(g.rotation_in_positions);
    CHECK(r.scan_rotation_deg == Approx(position_rotation_deg(g)).margin(1e-12));
    CHECK(std::abs(r.scan_rotation_deg) <= 45.0);
    // The object grid stays the session's (scan axes); the reconstructor's own is turned.
    CHECK(r.object.rows == plain.rows);
    CHECK(r.object.cols == plain.cols);
    // The tilt: the offset's sub-pixel rest (-0.3 px along rows), turned by the frames' quarter
    // turns only.
    const double q = frame_rotation_deg(g) * std::numbers::pi / 180.0;
    CHECK(r.probe.tilt_y_px == Approx(-0.3 * std::cos(q)).margin(1e-12));
    CHECK(r.probe.tilt_x_px == Approx(-0.3 * std::sin(q)).margin(1e-12));
  }
  CHECK(turned(12.0, false).reconstructor_config().scan_rotation_deg == Approx(12.0));
  CHECK(turned(100.0, false).reconstructor_config().scan_rotation_deg == Approx(10.0));
  CHECK(turned(90.0, true).reconstructor_config().scan_rotation_deg == 0.0);
  auto r = make_reconstructor(turned(12.0, true).reconstructor_config());
  CHECK(r->snapshot().grid.rows == plain.rows);
}
