// A crystal for the tests of the policies that read columns (lattice-flank, the learned flank
// scorer): 2H-MoS2's projected columns and a phase image of them; and the rule of
// tests/fixtures/tiny_flank_scorer.pt as a FlankMoveScorer.
#pragma once

#include <array>
#include <cmath>
#include <cstdint>
#include <span>
#include <utility>
#include <vector>

#include "ptypilot/core/policy.hpp"
#include "ptypilot/policy/lattice_flank_policy.hpp"

namespace ptypilot::test {

inline constexpr double kPi = 3.14159265358979323846;

// The projected columns of 2H-MoS2: a honeycomb of a = 3.16 A, Mo on one sublattice and S2 on
// the other, turned by `angle_deg` and shifted by `origin`, over [lo, hi]^2.
struct Honeycomb {
  double a = 3.16;
  double angle_deg = 17.0;
  Vec2 origin{0.37, -0.81};

  Vec2 a1() const { return rotated({0.0, a}); }
  Vec2 a2() const { return rotated({a * std::sqrt(3.0) / 2, a / 2}); }
  Vec2 rotated(Vec2 v) const {
    const double t = angle_deg * kPi / 180;
    return {std::cos(t) * v.y + std::sin(t) * v.x, -std::sin(t) * v.y + std::cos(t) * v.x};
  }
  // (site, sublattice): 0 for Mo, 1 for S2.
  std::vector<std::pair<Vec2, int>> columns(double lo, double hi) const {
    std::vector<std::pair<Vec2, int>> out;
    const Vec2 s = {(a1().y + a2().y) / 3, (a1().x + a2().x) / 3};  // the S2 site in the cell
    for (int i = -20; i <= 20; ++i)
      for (int j = -20; j <= 20; ++j)
        for (int sub = 0; sub < 2; ++sub) {
          const Vec2 p{origin.y + i * a1().y + j * a2().y + sub * s.y,
                       origin.x + i * a1().x + j * a2().x + sub * s.x};
          if (p.y >= lo && p.y <= hi && p.x >= lo && p.x <= hi) out.push_back({p, sub});
        }
    return out;
  }
};

inline double nearest(const std::vector<Vec2>& points, Vec2 p) {
  double best = INFINITY;
  for (const Vec2& q : points) best = std::min(best, std::hypot(q.y - p.y, q.x - p.x));
  return best;
}

inline std::vector<Vec2> positions_of(const std::vector<std::pair<Vec2, int>>& columns) {
  std::vector<Vec2> out;
  for (const auto& c : columns) out.push_back(c.first);
  return out;
}

// Deterministic noise in [-amplitude, amplitude], the same on every standard library.
inline double noise(std::uint64_t& state, double amplitude) {
  state = state * 6364136223846793005ULL + 1442695040888963407ULL;
  return amplitude * (2.0 * static_cast<double>(state >> 11) / 9007199254740992.0 - 1.0);
}

// A phase image of Gaussian columns (Mo 0.6 rad, S2 0.3 rad, 0.3 A wide) on `grid`.
inline Potential crystal_potential(const ObjectGrid& grid, const Honeycomb& crystal) {
  Potential v;
  v.grid = grid;
  v.phase_rad = RealImage(grid.rows, grid.cols);
  const double lo = -grid.fov_origin_A.y - 2, hi = grid.rows * grid.pixel_A;
  for (const auto& [p, sub] : crystal.columns(lo, hi)) {
    const double height = sub == 0 ? 0.6 : 0.3;
    for (int r = 0; r < grid.rows; ++r)
      for (int c = 0; c < grid.cols; ++c) {
        const double dy = r * grid.pixel_A - grid.fov_origin_A.y - p.y;
        const double dx = c * grid.pixel_A - grid.fov_origin_A.x - p.x;
        const double d2 = dy * dy + dx * dx;
        if (d2 < 1.5 * 1.5) v.phase_rad(r, c) += static_cast<float>(height * std::exp(-d2 / (2 * 0.3 * 0.3)));
      }
  }
  return v;
}

// tests/fixtures/tiny_flank_scorer.pt's scores in C++: the map -|c - 0.5|, c the features' third
// channel (distance to the fitted lattice's nearest column), read bilinearly at each candidate,
// which lies (dy, dx) step_px pixels from the patch's centre. It keeps the last call's input.
class FlankRuleScorer final : public FlankMoveScorer {
 public:
  FlankRuleScorer(int half_px, double step_px) : half_px_(half_px), step_px_(step_px) {}
  int patch_half_px() const override { return half_px_; }
  Status score(std::span<const float> features, std::span<const Vec2> nodes_A,
               std::vector<std::array<float, kFlankMoves>>* scores) override {
    last_features.assign(features.begin(), features.end());
    last_nodes.assign(nodes_A.begin(), nodes_A.end());
    ++calls;
    const int side = 2 * half_px_ + 1;
    const std::size_t plane = static_cast<std::size_t>(side * side);
    scores->resize(nodes_A.size());
    for (std::size_t k = 0; k < nodes_A.size(); ++k) {
      const float* c = features.data() + (k * kFlankFeatureChannels + 2) * plane;
      for (int m = 0; m < kFlankMoves; ++m) {
        const double r = half_px_ + (m / 3 - 1) * step_px_, q = half_px_ + (m % 3 - 1) * step_px_;
        const int r0 = static_cast<int>(std::floor(r)), q0 = static_cast<int>(std::floor(q));
        const double fr = r - r0, fq = q - q0;
        auto at = [&](int i, int j) { return -std::abs(static_cast<double>(c[i * side + j]) - 0.5); };
        (*scores)[k][static_cast<std::size_t>(m)] =
            static_cast<float>((1 - fr) * ((1 - fq) * at(r0, q0) + fq * at(r0, q0 + 1)) +
                               fr * ((1 - fq) * at(r0 + 1, q0) + fq * at(r0 + 1, q0 + 1)));
      }
    }
    return Status::Ok();
  }

  std::vector<float> last_features;
  std::vector<Vec2> last_nodes;
  int calls = 0;

 private:
  int half_px_;
  double step_px_;
};

}  // namespace ptypilot::test
