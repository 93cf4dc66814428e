// Scan rotation in the positions (scan_rotation.hpp).
#include "ptypilot/scan_rotation.hpp"

#include "ptypilot/frame_geometry.hpp"

#include <algorithm>
#include <cmath>
#include <numbers>
#include <stdexcept>

namespace ptypilot {
float bicubic_sample(const RealImage& image, double row, double col) {
  const int rows = image.rows(), cols = image.cols();
  if (rows == 0 || cols == 0) return 0.0f;
  row = std::clamp(row, 0.0, double(rows - 1));
  col = std::clamp(col, 0.0, double(cols - 1));
  const int r0 = int(std::floor(row)), c0 = int(std::floor(col));
  const double fr = row - r0, fc = col - c0;
  // The frame map's kernel (Keys, a = -1/2): interpolating, exact for quadratics.
  double wr[4], wc[4];
  keys_cubic_weights(fr, wr);
  keys_cubic_weights(fc, wc);
  double value = 0;
  for (int i = 0; i < 4; ++i) {
    const int r = std::clamp(r0 - 1 + i, 0, rows - 1);
    double line = 0;
    for (int j = 0; j < 4; ++j) line += wc[j] * image(r, std::clamp(c0 - 1 + j, 0, cols - 1));
    value += wr[i] * line;
  }
  return static_cast<float>(value);
}

ScanRotation::ScanRotation(double angle_deg, const ObjectGrid& scan_grid, int window_px)
    : angle_deg_(angle_deg), scan_(scan_grid) {
  if (!std::isfinite(angle_deg)) throw std::invalid_argument("scan rotation: angle not finite");
  if (scan_grid.rows <= 0 || scan_grid.cols <= 0 || !(scan_grid.pixel_A > 0) || window_px <= 0)
    throw std::invalid_argument("scan rotation: the scan grid has no pixels");
  const double theta = angle_deg * std::numbers::pi / 180.0;
  cos_ = std::cos(theta);
  sin_ = std::sin(theta);
  // Exact zeros keep quarter turns free of rounding.
  if (std::abs(cos_) < 1e-15) cos_ = 0;
  if (std::abs(sin_) < 1e-15) sin_ = 0;
  const double h = scan_grid.fov_height_A, w = scan_grid.fov_width_A;
  const double height = w * std::abs(sin_) + h * std::abs(cos_);
  const double width = w * std::abs(cos_) + h * std::abs(sin_);
  // The scan grid's margin: its first probe centre sits window / 2 + margin pixels in.
  const int margin = std::max(
      0, int(std::lround(scan_grid.fov_origin_A.y / scan_grid.pixel_A)) - window_px / 2);
  detector_ = object_grid_for_fov(height, width, scan_grid.pixel_A, window_px, margin);
}

Vec2 ScanRotation::to_detector_unclamped(Vec2 s) const {
  const double y = s.y - scan_.fov_height_A / 2, x = s.x - scan_.fov_width_A / 2;
  return {x * sin_ + y * cos_ + detector_.fov_height_A / 2,
          x * cos_ - y * sin_ + detector_.fov_width_A / 2};
}

Vec2 ScanRotation::to_detector(Vec2 s) const {
  Vec2 out = to_detector_unclamped(s);
  // The turned FOV's corners lie on the bounding box's edges: keep rounding inside.
  out.y = std::clamp(out.y, 0.0, detector_.fov_height_A);
  out.x = std::clamp(out.x, 0.0, detector_.fov_width_A);
  return out;
}

Vec2 ScanRotation::to_scan(Vec2 d) const {
  const double y = d.y - detector_.fov_height_A / 2, x = d.x - detector_.fov_width_A / 2;
  return {-x * sin_ + y * cos_ + scan_.fov_height_A / 2,
          x * cos_ + y * sin_ + scan_.fov_width_A / 2};
}

RealImage ScanRotation::to_scan_image(const RealImage& image) const {
  RealImage out(scan_.rows, scan_.cols);
  const double p = scan_.pixel_A;
  for (int r = 0; r < scan_.rows; ++r)
    for (int c = 0; c < scan_.cols; ++c) {
      // The scan grid's pixel as a scan position, turned onto the detector grid.
      const Vec2 d = to_detector_unclamped({r * p - scan_.fov_origin_A.y,
                                            c * p - scan_.fov_origin_A.x});
      out(r, c) = bicubic_sample(image, (d.y + detector_.fov_origin_A.y) / detector_.pixel_A,
                                 (d.x + detector_.fov_origin_A.x) / detector_.pixel_A);
    }
  return out;
}

RealImage ScanRotation::to_detector_image(const RealImage& image) const {
  RealImage out(detector_.rows, detector_.cols);
  const double p = detector_.pixel_A;
  for (int r = 0; r < detector_.rows; ++r)
    for (int c = 0; c < detector_.cols; ++c) {
      const Vec2 s = to_scan({r * p - detector_.fov_origin_A.y, c * p - detector_.fov_origin_A.x});
      out(r, c) = bicubic_sample(image, (s.y + scan_.fov_origin_A.y) / scan_.pixel_A,
                                 (s.x + scan_.fov_origin_A.x) / scan_.pixel_A);
    }
  return out;
}

RotatedReconstructor::RotatedReconstructor(ScanRotation rotation,
                                           std::unique_ptr<Reconstructor> inner)
    : rotation_(std::move(rotation)), inner_(std::move(inner)) {}

Status RotatedReconstructor::add_frames(std::span<const Frame> frames) {
  turned_.assign(frames.begin(), frames.end());
  for (Frame& f : turned_) {
    // Outside the scan's FOV stays outside (the reconstructor names it); inside, turned.
    const ObjectGrid& g = rotation_.scan_grid();
    constexpr double kTolerance_A = 1e-6;
    const Vec2 s = f.position_A;
    const bool inside = std::isfinite(s.y) && std::isfinite(s.x) && s.y >= -kTolerance_A &&
                        s.x >= -kTolerance_A && s.y <= g.fov_height_A + kTolerance_A &&
                        s.x <= g.fov_width_A + kTolerance_A;
    if (!inside) return out_of_range("scan position outside the field of view [0, " +
                                     std::to_string(g.fov_height_A) + "] x [0, " +
                                     std::to_string(g.fov_width_A) + "] A");
    f.position_A = rotation_.to_detector(s);
  }
  return inner_->add_frames(turned_);
}

Status RotatedReconstructor::iterate(int iterations) { return inner_->iterate(iterations); }

Potential RotatedReconstructor::snapshot() const {
  Potential p = inner_->snapshot();
  p.phase_rad = rotation_.to_scan_image(p.phase_rad);
  p.grid = rotation_.scan_grid();
  return p;
}

Status RotatedReconstructor::set_potential(const RealImage& phase_rad) {
  if (phase_rad.rows() != rotation_.scan_grid().rows ||
      phase_rad.cols() != rotation_.scan_grid().cols)
    return invalid_argument("warm start: the potential is not the object grid's shape");
  return inner_->set_potential(rotation_.to_detector_image(phase_rad));
}

}  // namespace ptypilot
