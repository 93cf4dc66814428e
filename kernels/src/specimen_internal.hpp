// What specimen.cpp and specimen_vacuum.cpp share: the seeded random stream, the field, and the
// continuous lattices the vacuum-rich specimens are cut from. Not part of the public interface.
#pragma once

#include <cstddef>
#include <cstdint>
#include <limits>
#include <random>
#include <span>
#include <vector>

#include "ptypilot/specimen.hpp"

namespace ptypilot::sim::detail {

// std::uniform_real_distribution and friends are implementation-defined, which would make the
// specimens differ between standard libraries; the raw mt19937_64 stream is fully specified.
class Rng {
 public:
  explicit Rng(std::uint64_t seed) : engine_(seed) {}

  // Uniform in [0, 1) from the top 53 bits.
  double uniform() { return static_cast<double>(engine_() >> 11) * 0x1.0p-53; }

  // Uniform in [0, n), unbiased: draws past the last whole multiple of n are rejected.
  std::size_t index(std::size_t n) {
    const std::uint64_t max = std::numeric_limits<std::uint64_t>::max();
    const std::uint64_t limit = max - max % n;
    std::uint64_t x = engine_();
    while (x >= limit) x = engine_();
    return static_cast<std::size_t>(x % n);
  }

 private:
  std::mt19937_64 engine_;
};

// Every specimen takes the same draws in the same order, whether or not a flag uses them, so that
// switching one randomisation off leaves the others unchanged for the same seed.
struct Draws {
  double rotation;  // in-plane angle of the lattice or the tube axis
  double shift_a;   // lattice shift along a1, or tube centre offset along y
  double shift_b;   // lattice shift along a2, or tube centre offset along x
  double spin;      // outer tube about its axis, relative to the inner one
};

Draws draw(Rng& rng);

inline Vec2 operator+(Vec2 p, Vec2 q) { return {p.y + q.y, p.x + q.x}; }
inline Vec2 operator-(Vec2 p, Vec2 q) { return {p.y - q.y, p.x - q.x}; }
inline Vec2 operator*(double s, Vec2 p) { return {s * p.y, s * p.x}; }

// (y, x) turned by angle_rad.
Vec2 rotate(Vec2 p, double angle_rad);

// The simulated field [0, height_A] x [0, width_A] and the scan FOV on it.
struct Field {
  double height_A;
  double width_A;
  Vec2 fov_origin_A;
  double fov_height_A;
  double fov_width_A;

  Vec2 center() const { return {height_A / 2, width_A / 2}; }
  Vec2 fov_center() const {
    return {fov_origin_A.y + fov_height_A / 2, fov_origin_A.x + fov_width_A / 2};
  }
  bool contains(Vec2 p, double margin_A) const {
    return p.y >= -margin_A && p.y <= height_A + margin_A && p.x >= -margin_A &&
           p.x <= width_A + margin_A;
  }
  bool fov_contains(Vec2 p) const {
    return p.y >= fov_origin_A.y && p.y <= fov_origin_A.y + fov_height_A &&
           p.x >= fov_origin_A.x && p.x <= fov_origin_A.x + fov_width_A;
  }
  // Radius of the disc about the centre that holds the field plus margin.
  double reach_A(double margin_A) const;
};

// The field of a config: its FOV, or the whole field where the config gives none. Throws
// std::invalid_argument for a non-positive field or a FOV that leaves it.
Field make_field(const SpecimenConfig& config, double height_A, double width_A);

// The continuous MoS2 monolayer build_specimen makes for kMoS2, over the field plus margin.
std::vector<Atom> mos2(const Draws& draws, const SpecimenConfig& config, const Field& field);

// The axis of the DWCNT specimen: a point on it and its direction.
struct TubeAxis {
  Vec2 center_A;
  double angle_rad;
};
TubeAxis dwcnt_axis(const Draws& draws, const SpecimenConfig& config, const Field& field);

// specimen_vacuum.cpp: the specimens with vacuum in the field. `rng` continues the stream after
// `draws`; the vacancies are drawn from it afterwards.
std::vector<Atom> vacuum_specimen(const Draws& draws, const SpecimenConfig& config,
                                  const Field& field, Rng& rng);

// specimen_grain_boundary.cpp: two MoS2 grains meeting on a line; `rng` as for vacuum_specimen.
std::vector<Atom> grain_boundary(const Draws& draws, const SpecimenConfig& config,
                                 const Field& field, Rng& rng);

}  // namespace ptypilot::sim::detail
