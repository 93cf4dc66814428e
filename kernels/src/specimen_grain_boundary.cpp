// A tilt grain boundary in monolayer MoS2: two grains of one lattice, turned against each other,
// meet along a gently curved line across the FOV. The whole field is material, as on MoS2, but
// the information is not spread evenly: inside a grain every unit cell repeats its neighbours,
// while the boundary's dislocation cores and the change of orientation are unique. Grain
// boundaries are what such a specimen is imaged for, so a scan that knows where it is has
// something to gain over one that samples the whole field alike.
#include <algorithm>
#include <cmath>
#include <cstddef>
#include <numbers>
#include <vector>

#include "specimen_internal.hpp"

namespace ptypilot::sim::detail {
namespace {

constexpr double kPi = std::numbers::pi;
constexpr double kDegree = kPi / 180.0;

// Grain boundaries in CVD-grown MoS2 are mostly high-angle; the hexagonal lattice repeats
// every 60 degrees, so 30 degrees is the largest misorientation there is.
constexpr double kMinMisorientationDeg = 12.0;
constexpr double kMaxMisorientationDeg = 30.0;
// The boundary passes within this fraction of the FOV side of the FOV centre.
constexpr double kBoundaryOffsetFraction = 0.15;
// A boundary meanders on the scale of nanometres: one period of this amplitude across the FOV.
constexpr double kBoundaryAmplitudeA = 1.5;
// Where the two grains overlap at the boundary, an atom of the second grain closer than this to
// one of the first is left out. The nearest projected neighbours in MoS2 are Mo-S2 at 1.82 A, so
// this keeps the two lattices' own spacing and removes only the unphysical pairs.
constexpr double kMinSpacingA = 1.5;

struct Boundary {
  Vec2 point_A;
  Vec2 normal;    // unit, pointing into the second grain
  Vec2 along;     // unit, along the line
  double period_A;
  double phase_rad;

  // Signed distance from the curved boundary: < 0 in the first grain.
  double side(Vec2 p) const {
    const Vec2 d = p - point_A;
    const double s = d.y * along.y + d.x * along.x;
    const double n = d.y * normal.y + d.x * normal.x;
    return n - kBoundaryAmplitudeA * std::sin(2 * kPi * s / period_A + phase_rad);
  }
};

}  // namespace

std::vector<Atom> grain_boundary(const Draws& draws, const SpecimenConfig& config,
                                 const Field& field, Rng& rng) {
  // Drawn in a fixed order after the common draws, whatever the flags say.
  const double misorientation_rad =
      (kMinMisorientationDeg + (kMaxMisorientationDeg - kMinMisorientationDeg) * rng.uniform()) *
      kDegree;
  Draws second = draws;
  second.shift_a = rng.uniform();
  second.shift_b = rng.uniform();
  const double line_angle_rad = kPi * rng.uniform();
  const double side_A = std::min(field.fov_height_A, field.fov_width_A);
  const double offset_A = kBoundaryOffsetFraction * side_A * (2 * rng.uniform() - 1);
  const double phase_rad = 2 * kPi * rng.uniform();

  const Vec2 along{std::sin(line_angle_rad), std::cos(line_angle_rad)};
  const Vec2 normal{along.x, -along.y};
  const Boundary boundary{field.fov_center() + offset_A * normal, normal, along, side_A,
                          phase_rad};

  // The second grain is the first turned by the misorientation (rotation adds to the drawn
  // angle; without random rotation it is the misorientation alone).
  const double first_turn = config.random_rotation ? draws.rotation : 0.0;
  second.rotation = first_turn + misorientation_rad / (2 * kPi);
  SpecimenConfig turned = config;
  turned.random_rotation = true;
  turned.random_translation = true;
  if (!config.random_translation) second.shift_a = second.shift_b = 0.0;

  std::vector<Atom> atoms = mos2(draws, config, field);
  std::erase_if(atoms, [&](const Atom& a) { return boundary.side({a.y_A, a.x_A}) >= 0; });
  std::vector<Atom> other = mos2(second, turned, field);
  std::erase_if(other, [&](const Atom& a) { return boundary.side({a.y_A, a.x_A}) < 0; });

  // Only atoms near the line can be too close to the other grain. side() is not a Euclidean
  // distance on a curved line (its slope stays below 0.5), so the band is twice the spacing.
  const double band_A = 2 * kMinSpacingA;
  std::vector<Vec2> near_first;
  for (const Atom& a : atoms)
    if (boundary.side({a.y_A, a.x_A}) > -band_A) near_first.push_back({a.y_A, a.x_A});
  std::erase_if(other, [&](const Atom& b) {
    if (boundary.side({b.y_A, b.x_A}) > band_A) return false;
    return std::any_of(near_first.begin(), near_first.end(), [&](Vec2 q) {
      return std::hypot(b.y_A - q.y, b.x_A - q.x) < kMinSpacingA;
    });
  });
  atoms.insert(atoms.end(), other.begin(), other.end());
  return atoms;
}

}  // namespace ptypilot::sim::detail
