#include "raster_nodes.hpp"

#include <algorithm>
#include <cmath>
#include <sstream>

namespace ptypilot::raster_nodes {

bool valid_raster(const ScanRaster& raster) {
  return raster.rows > 0 && raster.cols > 0 && std::isfinite(raster.step_A) && raster.step_A > 0;
}

// A raster with no positions is a session misconfigured, not a scan that is finished: answering
// it with no positions would end the session as if it had succeeded.
Status check_raster(const ScanRaster& raster) {
  if (valid_raster(raster)) return Status::Ok();
  std::ostringstream message;
  message << "the raster (" << raster.rows << " x " << raster.cols << " positions, step "
          << raster.step_A << " A) has no positions: rows, cols and step_A must be positive";
  return invalid_argument(message.str());
}

std::size_t node_count(const ScanRaster& raster) {
  return static_cast<std::size_t>(raster.rows) * static_cast<std::size_t>(raster.cols);
}

Vec2 node_position(const ScanRaster& raster, std::size_t index) {
  const int i = static_cast<int>(index / raster.cols);
  const int j = static_cast<int>(index % raster.cols);
  return {i * raster.step_A, j * raster.step_A};
}

// Only the nearest node can be within half a step, so rounding finds it.
long nearest_node_within_half_step(const ScanRaster& raster, Vec2 p) {
  if (!std::isfinite(p.y) || !std::isfinite(p.x)) return -1;
  const double fy = p.y / raster.step_A;
  const double fx = p.x / raster.step_A;
  // Guard the conversion: a far-off position must not overflow lround.
  if (fy < -1 || fx < -1 || fy > raster.rows || fx > raster.cols) return -1;
  const long i = std::lround(fy);
  const long j = std::lround(fx);
  if (i < 0 || j < 0 || i >= raster.rows || j >= raster.cols) return -1;
  const double d = std::hypot(fy - i, fx - j);
  // The relative slack keeps a position computed as i * step on its node despite rounding.
  if (d > 0.5 * (1 + 1e-9)) return -1;
  return i * raster.cols + j;
}

std::vector<char> visited_mask(const ScanRaster& raster, std::span<const Vec2> visited) {
  std::vector<char> mask(node_count(raster), 0);
  for (const Vec2& p : visited) {
    const long node = nearest_node_within_half_step(raster, p);
    if (node >= 0) mask[static_cast<std::size_t>(node)] = 1;
  }
  return mask;
}

void fill_in_raster_order(const ScanRaster& raster, int count, std::vector<char>& taken,
                          std::vector<Vec2>& out) {
  for (std::size_t n = 0; n < taken.size() && static_cast<int>(out.size()) < count; ++n) {
    if (taken[n]) continue;
    taken[n] = 1;
    out.push_back(node_position(raster, n));
  }
}

int clamped_budget(const ScanRaster& raster, int total_positions) {
  const long nodes = static_cast<long>(node_count(raster));
  return static_cast<int>(std::clamp<long>(total_positions, 1, nodes));
}

std::vector<Vec2> next_of_pattern(const PolicyContext& context, std::span<const Vec2> pattern) {
  const ScanRaster& raster = context.raster;
  if (context.count <= 0) return {};
  std::vector<char> taken = visited_mask(raster, context.visited_A);
  std::vector<Vec2> out;
  out.reserve(static_cast<std::size_t>(context.count));
  for (const Vec2& p : pattern) {
    if (static_cast<int>(out.size()) == context.count) break;
    const long node = nearest_node_within_half_step(raster, p);
    if (node < 0 || taken[static_cast<std::size_t>(node)]) continue;
    taken[static_cast<std::size_t>(node)] = 1;
    out.push_back(p);
  }
  fill_in_raster_order(raster, context.count, taken, out);
  return out;
}

// Rejection sampling (Lemire's threshold): values below 2^64 mod n are redrawn so that every
// residue is equally likely. Defined here, not with std::uniform_int_distribution, whose output
// is implementation-defined.
std::uint64_t uniform_index(std::mt19937_64& rng, std::uint64_t n) {
  const std::uint64_t threshold = (0 - n) % n;  // == 2^64 mod n
  std::uint64_t x = rng();
  while (x < threshold) x = rng();
  return x % n;
}

}  // namespace ptypilot::raster_nodes
