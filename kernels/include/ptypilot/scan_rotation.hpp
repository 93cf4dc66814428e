// Scan rotation in the positions, not the frames (frame_geometry.hpp, step 4).
//
// A detector turned by R against the scan (raw pixel c + d + F R k sees the scan-axis frequency
// k) records, at scan position s over the object o, the far field of the turned object
// o'(r') = o(R^-1 r') at position R s, in the detector's own frequencies q = R k: substitute
// r' = R r in the exit wave's Fourier integral; the probe is round (its aperture and
// aberrations are), so P(R^-1 u) = P(u). So the frames need no resampling: the reconstructor
// reconstructs o' on a grid aligned with the detector from the frames as they are, at the turned
// positions, and o(r) = o'(R r) turns the result back for everything that lives in scan axes
// (the policy, Safety, the recorded potential, ctl and events). Resampling the frames instead
// cannot be exact: a pattern sampled at the detector's pixels is aliased (the intensity's band
// is twice the wave's), and on graphene-small at 12 degrees a bilinear resampling cost 0.2 SSIM
// against the true phase; turning positions keeps the ideal data set's SSIM (README: Frame
// geometry).
//
// R rotates (x, y) by angle_deg: x' = x cos - y sin, y' = x sin + y cos (frame_geometry.cpp's
// convention), about the centre of the scan's field of view, which goes to the centre of the
// detector-aligned grid's field of view: the bounding box of the turned FOV, with the scan
// grid's pixel, window and margin.
#pragma once

#include <memory>
#include <span>
#include <string_view>
#include <vector>

#include "ptypilot/image.hpp"
#include "ptypilot/reconstructor.hpp"
#include "ptypilot/scan_geometry.hpp"

namespace ptypilot {

class ScanRotation {
 public:
  // scan_grid: the session's object grid (scan axes); window_px: the probe window. Throws
  // std::invalid_argument for a non-finite angle or a grid without pixels.
  ScanRotation(double angle_deg, const ObjectGrid& scan_grid, int window_px);

  double angle_deg() const { return angle_deg_; }
  const ObjectGrid& scan_grid() const { return scan_; }
  // The grid the reconstructor works on: aligned with the detector, covering the turned FOV.
  const ObjectGrid& detector_grid() const { return detector_; }

  // A scan position (Angstrom from the scan FOV's origin) as a position on the detector grid
  // (from its FOV origin), and back.
  Vec2 to_detector(Vec2 scan_A) const;
  Vec2 to_scan(Vec2 detector_A) const;

  // An image on the detector grid turned back onto the scan grid, o(r) = o'(R r), and the
  // inverse (a warm start given in scan axes). Bicubic (Keys, a = -0.5) interpolation; points
  // beyond the source grid take its nearest edge value.
  RealImage to_scan_image(const RealImage& detector_image) const;
  RealImage to_detector_image(const RealImage& scan_image) const;

 private:
  Vec2 to_detector_unclamped(Vec2 scan_A) const;
  double angle_deg_;
  double cos_, sin_;
  ObjectGrid scan_, detector_;
};

// Bicubic (Keys, a = -0.5) sample of an image at a fractional (row, col), edges clamped.
float bicubic_sample(const RealImage& image, double row, double col);

// A Reconstructor on the detector-aligned grid that speaks scan axes: add_frames turns the
// positions, snapshot() turns the potential back onto the scan grid, set_potential turns a scan
// image onto the detector grid. make_reconstructor builds one for a config with
// scan_rotation_deg != 0.
class RotatedReconstructor final : public Reconstructor {
 public:
  RotatedReconstructor(ScanRotation rotation, std::unique_ptr<Reconstructor> inner);
  Status add_frames(std::span<const Frame> frames) override;
  Status iterate(int iterations) override;
  Potential snapshot() const override;
  Status set_potential(const RealImage& phase_rad) override;
  std::string_view backend() const override { return inner_->backend(); }
  const ScanRotation& rotation() const { return rotation_; }
  const Reconstructor& inner() const { return *inner_; }

 private:
  ScanRotation rotation_;
  std::unique_ptr<Reconstructor> inner_;
  std::vector<Frame> turned_;
};

}  // namespace ptypilot
