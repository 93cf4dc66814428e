#include "ptypilot/scan_geometry.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <stdexcept>
#include <string>

namespace ptypilot {
namespace {

std::string format_A(Vec2 p) {
  char text[64];
  std::snprintf(text, sizeof text, "(%.4f, %.4f) A", p.y, p.x);
  return text;
}

}  // namespace

Status place_window(const ObjectGrid& grid, int window_px, Vec2 position_A, WindowPlacement* out) {
  if (!std::isfinite(position_A.y) || !std::isfinite(position_A.x))
    return invalid_argument("scan position is not finite");
  // A small tolerance keeps positions computed as i * step from failing on rounding.
  constexpr double kTolerance_A = 1e-6;
  if (position_A.y < -kTolerance_A || position_A.x < -kTolerance_A ||
      position_A.y > grid.fov_height_A + kTolerance_A ||
      position_A.x > grid.fov_width_A + kTolerance_A)
    return out_of_range("scan position " + format_A(position_A) + " is outside the field of view [0, " +
                        std::to_string(grid.fov_height_A) + "] x [0, " +
                        std::to_string(grid.fov_width_A) + "] A");
  const double cy = (position_A.y + grid.fov_origin_A.y) / grid.pixel_A;
  const double cx = (position_A.x + grid.fov_origin_A.x) / grid.pixel_A;
  const double fy = std::floor(cy);
  const double fx = std::floor(cx);
  WindowPlacement p;
  p.top = static_cast<int>(fy) - window_px / 2;
  p.left = static_cast<int>(fx) - window_px / 2;
  p.frac_y = cy - fy;
  p.frac_x = cx - fx;
  if (p.top < 0 || p.left < 0 || p.top + window_px > grid.rows || p.left + window_px > grid.cols)
    return out_of_range("the probe window of scan position " + format_A(position_A) +
                        " leaves the " + std::to_string(grid.rows) + " x " +
                        std::to_string(grid.cols) + " px object");
  *out = p;
  return Status::Ok();
}

ObjectGrid object_grid_for_fov(double fov_height_A, double fov_width_A, double pixel_A,
                               int window_px, int margin_px) {
  if (!(pixel_A > 0) || !(fov_height_A >= 0) || !(fov_width_A >= 0) || window_px <= 0)
    throw std::invalid_argument("object_grid_for_fov: invalid geometry");
  ObjectGrid g;
  g.pixel_A = pixel_A;
  g.fov_height_A = fov_height_A;
  g.fov_width_A = fov_width_A;
  // +1 pixel for the sub-pixel remainder of the last position.
  g.rows = static_cast<int>(std::ceil(fov_height_A / pixel_A)) + window_px + 1 + 2 * margin_px;
  g.cols = static_cast<int>(std::ceil(fov_width_A / pixel_A)) + window_px + 1 + 2 * margin_px;
  // The first probe centre sits window_px/2 + margin pixels from the edge, on a pixel.
  g.fov_origin_A = {(window_px / 2 + margin_px) * pixel_A, (window_px / 2 + margin_px) * pixel_A};
  return g;
}

std::vector<Vec2> raster_positions(int rows, int cols, double step_A) {
  if (rows <= 0 || cols <= 0 || !(step_A > 0))
    throw std::invalid_argument("raster_positions: rows, cols and step must be positive");
  std::vector<Vec2> positions;
  positions.reserve(static_cast<std::size_t>(rows) * cols);
  for (int i = 0; i < rows; ++i)
    for (int j = 0; j < cols; ++j) positions.push_back({i * step_A, j * step_A});
  return positions;
}

std::vector<Vec2> sparse_grid_positions(int count, int rows, int cols, double step_A) {
  if (count <= 0 || count > rows * cols)
    throw std::invalid_argument("sparse_grid_positions: count must be in [1, rows * cols]");
  if (!(step_A > 0)) throw std::invalid_argument("sparse_grid_positions: step must be positive");
  // Choose the number of sparse rows so that the spacing is about equal in y and x.
  const int sparse_rows = std::clamp(
      static_cast<int>(std::lround(std::sqrt(double(count) * rows / cols))), 1, std::min(rows, count));
  std::vector<Vec2> positions;
  positions.reserve(count);
  for (int r = 0; r < sparse_rows; ++r) {
    // The first (count % sparse_rows) rows get one extra position.
    const int in_row = count / sparse_rows + (r < count % sparse_rows ? 1 : 0);
    const double y = (r + 0.5) * rows / sparse_rows - 0.5;
    const int iy = std::clamp(static_cast<int>(std::lround(y)), 0, rows - 1);
    for (int c = 0; c < in_row; ++c) {
      const double x = (c + 0.5) * cols / in_row - 0.5;
      const int ix = std::clamp(static_cast<int>(std::lround(x)), 0, cols - 1);
      positions.push_back({iy * step_A, ix * step_A});
    }
  }
  return positions;
}

}  // namespace ptypilot
