// Where the object lies, where the scan field of view lies on it, and where a probe window
// falls for a scan position.
//
// Object pixel (i, j) samples the point (y, x) = (i, j) * pixel_A. Scan positions are in
// Angstrom relative to the FOV origin (as on the wire); the probe centre for position R is the
// object point R + fov_origin_A. The probe's own centre pixel is (N/2, N/2) of its window.
#pragma once

#include <span>
#include <vector>

#include "ptypilot/image.hpp"
#include "ptypilot/status.hpp"

namespace ptypilot {

// The raster the positions live on: rows x cols positions step_A apart, FOV origin at (0, 0).
struct ScanRaster {
  int rows = 0;
  int cols = 0;
  double step_A = 0.0;
  double height_A() const { return (rows - 1) * step_A; }
  double width_A() const { return (cols - 1) * step_A; }
};

struct ObjectGrid {
  int rows = 0;
  int cols = 0;
  double pixel_A = 0.0;
  Vec2 fov_origin_A;   // object point of scan position (0, 0)
  double fov_height_A = 0.0;  // scan positions must lie in [0, fov_height_A] x [0, fov_width_A]
  double fov_width_A = 0.0;
};

// A probe window on the object: integer top-left corner plus the sub-pixel remainder that the
// probe itself is shifted by, each component in [0, 1).
struct WindowPlacement {
  int top = 0;
  int left = 0;
  double frac_y = 0.0;
  double frac_x = 0.0;
};

// Places the window_px x window_px probe window for one scan position. Fails with kOutOfRange
// when the position is outside the FOV or its window leaves the object, and with
// kInvalidArgument for a non-finite position.
Status place_window(const ObjectGrid& grid, int window_px, Vec2 position_A, WindowPlacement* out);

// An object grid just large enough for a FOV of fov_height_A x fov_width_A scanned with a
// window of window_px pixels, plus margin_px on every side, the FOV centred.
ObjectGrid object_grid_for_fov(double fov_height_A, double fov_width_A, double pixel_A,
                               int window_px, int margin_px = 2);

// The full raster: rows x cols positions at `step_A`, row by row, starting at (0, 0).
std::vector<Vec2> raster_positions(int rows, int cols, double step_A);

// The paper's sparse-grid baseline: `count` positions spread as evenly as a grid allows over
// the FOV of a rows x cols raster with step step_A, each snapped to a raster position. Rows
// differ in length by at most one so that exactly `count` positions come back.
std::vector<Vec2> sparse_grid_positions(int count, int rows, int cols, double step_A);

}  // namespace ptypilot
