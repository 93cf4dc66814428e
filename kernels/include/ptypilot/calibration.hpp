// Calibration from the data: the frame geometry (frame_geometry.hpp) measured from the frames
// themselves. One implementation, used by `ptypilot calibrate` on a recorded data set and by the
// session's check of its first frames.
//
//   Disk: the bright-field disk of the mean pattern (centred view), its centre to a small
//   fraction of a pixel and its radius, compared with semiangle / detector pixel.
//   Rotation and flip: each frame's centre of mass (CoM) from the disk centre is a vector on the
//   scan grid. For a thin specimen the CoM is the gradient of a scalar (the probe-averaged
//   phase), so in scan coordinates the field has no curl; seen through the wrong rotation it has
//   (curl of a field turned by -theta = cos(theta) curl + sin(theta) div). The rotation and flip
//   that minimise the curl are the detector's; the curl fixes theta modulo 180 degrees, and the
//   physics of the deflection picks the branch: towards the atoms, which also scatter to the
//   dark field (fit_scan_rotation says how).
#pragma once

#include <array>
#include <cstddef>
#include <functional>
#include <optional>
#include <span>
#include <stdexcept>
#include <string>
#include <vector>

#include "ptypilot/frame_geometry.hpp"
#include "ptypilot/scan_geometry.hpp"

namespace ptypilot {

// What calibration cannot do with the data it was given (no disk, too few positions for the
// curl, unreadable frames), in words a person can act on.
class CalibrationError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// The mean of raw frames in the centred view (FFT-layout frames are fftshifted first).
class MeanPattern {
 public:
  MeanPattern(int side, FrameLayout layout);
  // Frames of another size are ignored (false).
  bool add(std::span<const float> raw);
  int side() const { return side_; }
  std::size_t frames() const { return frames_; }
  std::vector<double> mean() const;

 private:
  int side_;
  FrameLayout layout_;
  std::size_t frames_ = 0;
  std::vector<double> sum_;
  std::vector<float> centred_;
};

struct DiskMeasurement {
  // The disk centre in pixel coordinates of the centred view, and the same from floor(D/2):
  // the geometry's disk_offset_y_px / disk_offset_x_px.
  double centre_y_px = 0, centre_x_px = 0;
  double offset_y_px = 0, offset_x_px = 0;
  double radius_px = 0;
  double plateau = 0;     // the disk's level in the mean pattern
  double background = 0;  // the level just outside it
};

// The bright-field disk of a centred side x side pattern; nullopt, with the reason in *why, when
// there is none to measure (no bright region, too small, too little contrast, cut by the
// frame's edge).
std::optional<DiskMeasurement> measure_disk(std::span<const double> centred, int side,
                                            std::string* why = nullptr);

// Centre of mass of a centred raw frame, in pixels from (centre_y, centre_x): the whole frame,
// as the CoM theorem wants (the dark field carries the deflection too). {0, 0} for no counts.
std::array<double, 2> centre_of_mass(std::span<const float> centred, int side, double centre_y,
                                     double centre_x);

// The share of a centred frame's counts beyond 1.2 disk radii + 1 px of the disk's centre: the
// annular dark field, high where the probe is on atoms. 0 for no counts.
double dark_field_fraction(std::span<const float> centred, int side, const DiskMeasurement& disk);

// A vector field on the scan grid, row-major rows x cols nodes, in detector axes (y, x), with
// the dark-field image on the same nodes.
struct ComField {
  int rows = 0, cols = 0;
  std::vector<double> y, x;
  std::vector<double> dark_field;
  std::vector<unsigned char> measured;  // 0: no frame at that node
};

// Each position's raster node (row, col), or {-1, -1} when it is farther than a quarter step
// from every node: rasters fill the grid; an adaptive session's positions, snapped to its
// raster by Safety, fill part of it.
std::vector<std::array<int, 2>> raster_nodes(std::span<const Vec2> positions_A,
                                             const ScanRaster& raster);

struct RotationFit {
  double rotation_deg = 0;  // in [0, 360): frame_geometry.hpp's rotation_deg
  bool flip = false;
  // Sum of curl^2 over sum of (curl^2 + div^2) at the best angle, for the chosen flip and for the
  // other one: 0 is a pure gradient; the other flip's value says how clear the choice was.
  double curl_residual = 0;
  double other_flip_curl_residual = 0;
  // Correlation of the phase integrated from the field in scan axes, at the chosen branch, with
  // the dark-field image: positive by construction (see calibration.cpp); near zero the
  // 180-degree choice is weak.
  double phase_dark_field_correlation = 0;
  int cells = 0;  // grid cells with all four corners measured (where the curl was taken)
};

// Needs at least kMinCurlCells cells; throws CalibrationError otherwise.
RotationFit fit_scan_rotation(const ComField& field);
inline constexpr int kMinCurlCells = 16;

// The curl residual (as RotationFit's) of the field seen through rotation_deg and flip: for the
// tests' sweeps and the README's curve.
double curl_residual(const ComField& field, double rotation_deg, bool flip);

struct Calibration {
  std::size_t frames = 0;
  std::size_t frames_on_grid = 0;
  DiskMeasurement disk;
  double expected_radius_px = 0;   // semiangle / detector pixel
  double radius_disagreement = 0;  // (measured - expected) / expected
  RotationFit rotation;
  FrameGeometry geometry;  // layout as given, the disk offset and radius, rotation, flip
};

// Reads frame i (raw, side x side, in `layout`) into the span; false: unreadable (the reader
// may throw instead, with a better message).
using RawFrameReader = std::function<bool(std::size_t index, std::span<float> raw)>;

// Two passes over the frames: the mean pattern and its disk, then each frame's CoM on the grid
// and the rotation. Throws CalibrationError for no disk, too few grid cells, an unreadable frame.
Calibration calibrate(std::size_t frame_count, int side, FrameLayout layout,
                      const RawFrameReader& read, std::span<const std::array<int, 2>> nodes,
                      int grid_rows, int grid_cols, double expected_radius_px);

// The live check of a session's first frames against its configured geometry.
struct DiskCheckTolerances {
  double warn_offset_px = 0.35;
  double warn_radius_fraction = 0.10;
  double refuse_offset_radii = 0.5;  // centre off by more than this many disk radii
  double refuse_radius_fraction = 0.5;
};

struct DiskCheckVerdict {
  enum class Kind { kAgrees, kWarn, kRefuse } kind = Kind::kAgrees;
  std::string code;  // frame_disk_off_centre | frame_disk_radius_disagrees | frame_geometry_refused
  std::string message;
  std::optional<DiskMeasurement> disk;
  double offset_error_px = 0;  // measured centre minus configured, its length
  double radius_disagreement = 0;
};

// expected_radius_px: the geometry's disk_radius_px, or semiangle / detector pixel.
DiskCheckVerdict check_disk(std::span<const double> centred_mean, int side,
                            const FrameGeometry& configured, double expected_radius_px,
                            const DiskCheckTolerances& tolerances);

}  // namespace ptypilot
