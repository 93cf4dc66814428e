// The grain-boundary specimen: two MoS2 grains of one lattice at a stated misorientation, no
// overlapping atoms where they meet, and the seeding contract of every specimen.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <limits>
#include <numbers>
#include <vector>

#include "ptypilot/specimen.hpp"

namespace sim = ptypilot::sim;
using sim::Atom;
using sim::SpecimenConfig;
using sim::SpecimenKind;

namespace {

constexpr double kField = 40.0;  // A; the whole field is the FOV

SpecimenConfig boundary_config(std::uint64_t seed) {
  SpecimenConfig c;
  c.kind = SpecimenKind::kMoS2GrainBoundary;
  c.seed = seed;
  return c;
}

// The in-plane angle, modulo the lattice's 60 degrees, of the bond from each Mo inside the field
// (2 A in from its edge) to its nearest Mo.
std::vector<double> mo_bond_angles_deg(const std::vector<Atom>& atoms) {
  std::vector<const Atom*> mo;
  for (const Atom& a : atoms)
    if (a.Z == 42) mo.push_back(&a);
  std::vector<double> angles;
  for (const Atom* p : mo) {
    if (p->y_A < 2 || p->x_A < 2 || p->y_A > kField - 2 || p->x_A > kField - 2) continue;
    const Atom* nearest = nullptr;
    double best = std::numeric_limits<double>::infinity();
    for (const Atom* q : mo) {
      const double d = std::hypot(q->y_A - p->y_A, q->x_A - p->x_A);
      if (d > 1e-6 && d < best) best = d, nearest = q;
    }
    const double deg = std::atan2(nearest->y_A - p->y_A, nearest->x_A - p->x_A) * 180 / std::numbers::pi;
    angles.push_back(std::fmod(std::fmod(deg, 60.0) + 60.0, 60.0));
  }
  return angles;
}

// Circular distance between two angles modulo 60 degrees.
double apart_deg(double a, double b) {
  const double d = std::fabs(a - b);
  return std::min(d, 60.0 - d);
}

}  // namespace

TEST_CASE("Grain boundary: two grains, 12 to 30 degrees apart, each a large part of the field",
          "[specimen]") {
  for (std::uint64_t seed : {0u, 1u, 7u, 1000u}) {
    CAPTURE(seed);
    const std::vector<double> angles = mo_bond_angles_deg(sim::build_specimen(boundary_config(seed), kField, kField));
    REQUIRE(angles.size() > 100);
    // The first grain's orientation is the most common one; the second is what lies more than
    // 3 degrees from it (Mo at the boundary may bond across it, at any angle).
    std::vector<int> histogram(60, 0);
    for (double a : angles) ++histogram[static_cast<int>(a) % 60];
    const int first = static_cast<int>(std::max_element(histogram.begin(), histogram.end()) - histogram.begin());
    std::vector<double> others;
    std::size_t in_first = 0;
    for (double a : angles) {
      if (apart_deg(a, first + 0.5) <= 3.0) ++in_first;
      else others.push_back(a);
    }
    std::vector<int> other_histogram(60, 0);
    for (double a : others) ++other_histogram[static_cast<int>(a) % 60];
    const int second = static_cast<int>(std::max_element(other_histogram.begin(), other_histogram.end()) - other_histogram.begin());
    std::size_t in_second = 0;
    for (double a : others) in_second += apart_deg(a, second + 0.5) <= 3.0;
    // The line passes within 15 % of the side from the centre and bends by 1.5 A: each grain
    // holds well over a quarter of the field.
    CHECK(in_first > angles.size() / 4);
    CHECK(in_second > angles.size() / 4);
    CHECK(in_first + in_second > angles.size() * 9 / 10);
    const double misorientation = apart_deg(first, second);
    CHECK(misorientation >= 12.0 - 2.0);
    CHECK(misorientation <= 30.0 + 2.0);
  }
}

TEST_CASE("Grain boundary: no two atom columns closer than 1.5 A where the grains meet",
          "[specimen]") {
  for (std::uint64_t seed : {0u, 3u, 1001u}) {
    CAPTURE(seed);
    const std::vector<Atom> atoms = sim::build_specimen(boundary_config(seed), kField, kField);
    double nearest = std::numeric_limits<double>::infinity();
    for (std::size_t i = 0; i < atoms.size(); ++i)
      for (std::size_t j = i + 1; j < atoms.size(); ++j) {
        const double d = std::hypot(atoms[i].y_A - atoms[j].y_A, atoms[i].x_A - atoms[j].x_A);
        if (d > 1e-6) nearest = std::min(nearest, d);  // an S2 column is two atoms at one site
      }
    CHECK(nearest >= 1.5);
    // Not thinned beyond the overlap: MoS2 holds 3 atoms per 8.65 A^2 cell (Mo + S2).
    std::size_t inside = 0;
    for (const Atom& a : atoms) inside += a.y_A >= 0 && a.y_A <= kField && a.x_A >= 0 && a.x_A <= kField;
    const double cell_A2 = 3.16 * 3.16 * std::sqrt(3.0) / 2;
    CHECK(inside > 0.95 * 3 * kField * kField / cell_A2);
  }
}

TEST_CASE("Grain boundary: the same seed gives the same atoms, another seed others",
          "[specimen]") {
  const auto a = sim::build_specimen(boundary_config(5), kField, kField);
  const auto b = sim::build_specimen(boundary_config(5), kField, kField);
  const auto c = sim::build_specimen(boundary_config(6), kField, kField);
  REQUIRE(a.size() == b.size());
  for (std::size_t i = 0; i < a.size(); ++i) {
    CHECK(a[i].y_A == b[i].y_A);
    CHECK(a[i].x_A == b[i].x_A);
    CHECK(a[i].Z == b[i].Z);
  }
  CHECK((a.size() != c.size() || a[0].y_A != c[0].y_A || a[0].x_A != c[0].x_A));
  CHECK(sim::parse_specimen_kind("mos2-grain-boundary") == SpecimenKind::kMoS2GrainBoundary);
  const ptypilot::RealImage mask = sim::material_mask(boundary_config(5), 16, 16, 2.5);
  for (int i = 0; i < 16; ++i)
    for (int j = 0; j < 16; ++j) CHECK(mask(i, j) == 1.0f);
}
