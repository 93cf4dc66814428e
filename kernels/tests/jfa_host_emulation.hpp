// Jump Flooding as the GPU runs it, on the host: the library's seeding and schedule, and the
// kernels' pass body (jfa_elements.hpp) over the same pixels, pass after pass. test_jfa.cpp
// compares this with the exact labels in every build; the [cuda] tests compare a GPU with this.
#pragma once

#include <span>
#include <vector>

#include "cuda/jfa_seeding.hpp"
#include "ptypilot/reward.hpp"

namespace ptypilot::testing {

// Jump Flooding on the host: the seeding and schedule of the library and the pass body of the
// kernels, pass after pass.
inline Image<int> host_emulated_jfa_labels(const ObjectGrid& grid, std::span<const Vec2> positions_A,
                                           bool fov_only) {
  Image<int> labels(grid.rows, grid.cols, -1);
  const gpu::JfaRectangle rect = gpu::jfa_rectangle(grid, fov_only);
  if (rect.rows <= 0 || rect.cols <= 0) return labels;
  const std::vector<gpu::SeedPoint> seeds = gpu::jfa_seed_points(grid, positions_A);
  const std::vector<int> seed_pixel = gpu::place_jfa_seeds(seeds, rect, grid.pixel_A);
  const int pixels = rect.rows * rect.cols;
  std::vector<int> in(pixels, -1), out(pixels, -1);
  for (std::size_t m = 0; m < seeds.size(); ++m)
    if (seed_pixel[m] >= 0) in[seed_pixel[m]] = static_cast<int>(m);
  for (const int step : gpu::jfa_schedule(rect)) {
    const gpu::JfaPass pass{seeds.data(), in.data(), out.data(),   rect.rows, rect.cols,
                            rect.row0,    rect.col0, grid.pixel_A, step};
    for (int i = 0; i < pixels; ++i) out[i] = gpu::jfa_label_at(pass, i);
    std::swap(in, out);
  }
  for (int r = 0; r < rect.rows; ++r)
    for (int c = 0; c < rect.cols; ++c) labels(rect.row0 + r, rect.col0 + c) = in[r * rect.cols + c];
  return labels;
}

}  // namespace ptypilot::testing
