// Specimen models and their projected potentials: lattice geometry against the textbook
// structures, the Fourier-space potential against Kirkland's real-space formula, and the
// seeding contract the training data relies on.
#include <catch2/catch.hpp>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <limits>
#include <numbers>
#include <stdexcept>
#include <vector>

#include "ptypilot/specimen.hpp"

namespace sim = ptypilot::sim;
using sim::Atom;
using sim::SpecimenConfig;
using sim::SpecimenKind;

namespace {

constexpr double kPi = std::numbers::pi;
constexpr double kFormFactorToPotentialVA2 = 2 * kPi * 0.529177 * 14.39964;

double distance_A(const Atom& p, const Atom& q) { return std::hypot(p.y_A - q.y_A, p.x_A - q.x_A); }

// Smallest distance between two distinct positions (atoms stacked on one site do not count).
double nearest_distance_A(const std::vector<Atom>& atoms, int Z_from, int Z_to) {
  double best = std::numeric_limits<double>::infinity();
  for (const Atom& p : atoms) {
    if (p.Z != Z_from) continue;
    for (const Atom& q : atoms) {
      const double d = distance_A(p, q);
      if (q.Z == Z_to && d > 1e-6) best = std::min(best, d);
    }
  }
  return best;
}

bool inside(const Atom& atom, double height_A, double width_A) {
  return atom.y_A >= 0 && atom.y_A <= height_A && atom.x_A >= 0 && atom.x_A <= width_A;
}

bool same_atoms(const std::vector<Atom>& p, const std::vector<Atom>& q) {
  if (p.size() != q.size()) return false;
  for (std::size_t i = 0; i < p.size(); ++i) {
    if (p[i].y_A != q[i].y_A || p[i].x_A != q[i].x_A || p[i].Z != q[i].Z) return false;
  }
  return true;
}

// Peng, Ren, Dudarev & Whelan, Acta Cryst. A52, 257 (1996) (International Tables C, Table
// 4.3.2.2): an independent five-Gaussian fit, f_e(s) = sum a_i exp(-b_i s^2) with s = q / 2.
struct PengFit {
  double a[5];
  double b[5];
  double operator()(double q_per_A) const {
    const double s2 = q_per_A * q_per_A / 4;
    double f = 0;
    for (int i = 0; i < 5; ++i) f += a[i] * std::exp(-b[i] * s2);
    return f;
  }
};
constexpr PengFit kPengCarbon{{0.0893, 0.2563, 0.7570, 1.0487, 0.3575},
                              {0.2465, 1.7100, 6.4094, 18.6113, 50.2523}};
constexpr PengFit kPengSulfur{{0.2497, 0.5628, 1.3899, 2.1865, 0.7715},
                              {0.2681, 1.6711, 7.0267, 19.5377, 50.3888}};

}  // namespace

TEST_CASE("Kirkland scattering factors agree with the independent Peng fit", "[specimen]") {
  for (double q : {0.0, 0.25, 0.5, 1.0, 1.5, 2.0}) {
    INFO("q = " << q << " 1/A");
    CHECK(sim::electron_scattering_factor_A(6, q) == Approx(kPengCarbon(q)).epsilon(0.02));
    CHECK(sim::electron_scattering_factor_A(16, q) == Approx(kPengSulfur(q)).epsilon(0.02));
  }
  // Heavier atoms scatter more; f_e falls off with q.
  CHECK(sim::electron_scattering_factor_A(6, 0) == Approx(2.51).margin(0.01));
  CHECK(sim::electron_scattering_factor_A(42, 0) > sim::electron_scattering_factor_A(16, 0));
  CHECK(sim::electron_scattering_factor_A(42, 1.0) < sim::electron_scattering_factor_A(42, 0.5));
  CHECK_THROWS_AS(sim::electron_scattering_factor_A(118, 0.0), std::invalid_argument);
  CHECK_THROWS_AS(sim::atom_projected_potential_VA(6, 0.0), std::invalid_argument);
}

TEST_CASE("Fourier-space potential of one atom matches Kirkland's real-space v_z", "[specimen]") {
  constexpr double kPixelA = 0.05;
  constexpr int kSize = 240;  // 12 A
  for (int Z : {6, 16, 42}) {
    // Off the pixel grid, so the per-atom phase factors are exercised at fractional positions.
    const Atom atom{6.013, 5.979, Z};
    const std::vector<Atom> atoms{atom};
    const ptypilot::RealImage v = sim::projected_potential_VA(atoms, kSize, kSize, kPixelA);
    REQUIRE(v.rows() == kSize);
    REQUIRE(v.cols() == kSize);
    double worst = 0;
    int compared = 0;
    for (int i = 0; i < kSize; ++i) {
      for (int j = 0; j < kSize; ++j) {
        const double r = std::hypot(i * kPixelA - atom.y_A, j * kPixelA - atom.x_A);
        if (r < 0.7 || r > 3.0) continue;
        const double expected = sim::atom_projected_potential_VA(Z, r);
        worst = std::max(worst, std::abs(v(i, j) / expected - 1));
        ++compared;
      }
    }
    INFO("Z = " << Z << ", worst relative error between 0.7 and 3 A: " << worst);
    CHECK(compared > 10000);
    CHECK(worst < 0.03);
  }
}

TEST_CASE("Integral of v_z equals 2 pi a0 e f_e(0)", "[specimen]") {
  for (double pixel_A : {0.05, 0.14}) {
    for (int Z : {6, 16, 42}) {
      const int size = static_cast<int>(std::round(14.0 / pixel_A));
      const std::vector<Atom> atoms{{7.0, 7.0, Z}};
      const ptypilot::RealImage v = sim::projected_potential_VA(atoms, size, size, pixel_A);
      double sum = 0;
      for (float value : v.span()) sum += value;
      INFO("Z = " << Z << ", pixel " << pixel_A << " A");
      CHECK(sum * pixel_A * pixel_A ==
            Approx(kFormFactorToPotentialVA2 * sim::electron_scattering_factor_A(Z, 0))
                .epsilon(1e-3));
    }
  }
}

TEST_CASE("Atoms beyond the field contribute without wrapping around", "[specimen]") {
  constexpr double kPixelA = 0.05;
  constexpr int kSize = 240;
  const std::vector<Atom> atoms{{6.0, -2.0, 42}};  // 2 A left of the field
  const ptypilot::RealImage v = sim::projected_potential_VA(atoms, kSize, kSize, kPixelA);
  const double expected = sim::atom_projected_potential_VA(42, 2.0);
  CHECK(v(120, 0) == Approx(expected).epsilon(0.03));
  // The periodic image would sit 2 A beyond the far edge if the canvas were not padded.
  CHECK(std::abs(v(120, kSize - 1)) < 1e-3 * expected);

  const std::vector<Atom> far_away{{6.0, -50.0, 42}, {100.0, 6.0, 6}};
  const ptypilot::RealImage empty = sim::projected_potential_VA(far_away, kSize, kSize, kPixelA);
  for (float value : empty.span()) REQUIRE(std::abs(value) < 1e-4f);
}

TEST_CASE("Potential rejects bad grids and unknown elements", "[specimen]") {
  const std::vector<Atom> atoms{{1.0, 1.0, 6}};
  CHECK_THROWS_AS(sim::projected_potential_VA(atoms, 0, 10, 0.1), std::invalid_argument);
  CHECK_THROWS_AS(sim::projected_potential_VA(atoms, 10, 10, 0.0), std::invalid_argument);
  const std::vector<Atom> unknown{{1.0, 1.0, 92}};
  CHECK_THROWS_AS(sim::projected_potential_VA(unknown, 10, 10, 0.1), std::invalid_argument);
  const ptypilot::RealImage none = sim::projected_potential_VA({}, 8, 6, 0.1);
  CHECK(none.rows() == 8);
  CHECK(none.cols() == 6);
  for (float value : none.span()) CHECK(value == 0.0f);
}

TEST_CASE("MoS2 has the 2H lattice: Mo-Mo 3.16 A, S2 columns, 3 atoms per cell", "[specimen]") {
  SpecimenConfig config;
  config.kind = SpecimenKind::kMoS2;
  config.seed = 11;
  config.vacancies = 0;
  const std::vector<Atom> atoms = sim::build_specimen(config, 25.0, 25.0);
  const double a = sim::kMoS2LatticeA;
  CHECK(nearest_distance_A(atoms, 42, 42) == Approx(3.16).margin(1e-9));
  CHECK(nearest_distance_A(atoms, 42, 16) == Approx(a / std::sqrt(3.0)).margin(1e-9));

  // Every S site carries two atoms.
  for (const Atom& s : atoms) {
    if (s.Z != 16) continue;
    const auto stacked = std::count_if(atoms.begin(), atoms.end(), [&](const Atom& t) {
      return t.Z == 16 && distance_A(s, t) < 1e-9;
    });
    REQUIRE(stacked == 2);
  }

  // Areal density over a large field: 1 Mo + 2 S per a^2 sqrt(3) / 2.
  const double side_A = 80.0;
  const std::vector<Atom> big = sim::build_specimen(config, side_A, side_A);
  const auto in_field = std::count_if(big.begin(), big.end(),
                                      [&](const Atom& t) { return inside(t, side_A, side_A); });
  const auto mo_in_field = std::count_if(big.begin(), big.end(), [&](const Atom& t) {
    return t.Z == 42 && inside(t, side_A, side_A);
  });
  const double cell_area = a * a * std::sqrt(3.0) / 2;
  CHECK(double(in_field) == Approx(3 * side_A * side_A / cell_area).epsilon(0.02));
  CHECK(double(mo_in_field) == Approx(side_A * side_A / cell_area).epsilon(0.02));

  // Atoms fill the margin too, so the potential at the field edge sees all its neighbours.
  const auto in_margin = std::count_if(
      big.begin(), big.end(), [&](const Atom& t) { return t.x_A < -0.8 * sim::kSpecimenMarginA; });
  CHECK(in_margin > 0);
  for (const Atom& t : big) {
    REQUIRE(t.x_A >= -sim::kSpecimenMarginA - 1e-9);
    REQUIRE(t.y_A <= side_A + sim::kSpecimenMarginA + 1e-9);
  }
}

TEST_CASE("Graphene is a honeycomb with C-C 1.42 A", "[specimen]") {
  SpecimenConfig config;
  config.kind = SpecimenKind::kGraphene;
  config.seed = 5;
  config.vacancies = 0;
  const std::vector<Atom> atoms = sim::build_specimen(config, 20.0, 20.0);
  CHECK(nearest_distance_A(atoms, 6, 6) == Approx(1.42).margin(0.005));
  // Each atom well inside has exactly three neighbours at the bond length.
  for (const Atom& p : atoms) {
    if (!(p.y_A > 3 && p.y_A < 17 && p.x_A > 3 && p.x_A < 17)) continue;
    const auto neighbours = std::count_if(atoms.begin(), atoms.end(), [&](const Atom& q) {
      const double d = distance_A(p, q);
      return d > 1e-6 && d < 1.6;
    });
    REQUIRE(neighbours == 3);
  }
}

TEST_CASE("Nanotubes have the (n, m) diameters and the graphene density", "[specimen]") {
  // Paper: inner 9.78 A, outer 16.44 A; the (n, m) formula with a = 2.46 A gives 16.41 A.
  CHECK(2 * sim::nanotube_radius_A(10, 4) == Approx(9.78).margin(0.1));
  CHECK(2 * sim::nanotube_radius_A(18, 5) == Approx(16.44).margin(0.1));

  for (auto [n, m] : {std::pair{10, 4}, std::pair{18, 5}}) {
    const double radius_A = sim::nanotube_radius_A(n, m);
    const double diameter_formula_A =
        sim::kGrapheneLatticeA * std::sqrt(double(n * n + n * m + m * m)) / kPi;
    const double half_length_A = 40.0;
    // Axis along x: the diameter shows up as the extent in y.
    const std::vector<Atom> tube = sim::project_nanotube(n, m, {0.0, 0.0}, 0.0, 0.3, half_length_A);
    double y_min = 0, y_max = 0;
    for (const Atom& t : tube) {
      y_min = std::min(y_min, t.y_A);
      y_max = std::max(y_max, t.y_A);
      REQUIRE(t.x_A >= -half_length_A);
      REQUIRE(t.x_A < half_length_A);
      REQUIRE(t.Z == 6);
    }
    INFO("(" << n << ", " << m << ")");
    CHECK(y_max - y_min == Approx(diameter_formula_A).margin(0.1));
    CHECK(y_max - y_min <= 2 * radius_A + 1e-9);
    // Two atoms per graphene cell of area a^2 sqrt(3) / 2, no seam duplicates or gaps.
    const double a = sim::kGrapheneLatticeA;
    const double expected =
        2 * (2 * kPi * radius_A) * (2 * half_length_A) / (a * a * std::sqrt(3.0) / 2);
    CHECK(double(tube.size()) == Approx(expected).epsilon(0.02));

    // Turning the axis to y moves the diameter to x.
    const std::vector<Atom> turned =
        sim::project_nanotube(n, m, {0.0, 0.0}, kPi / 2, 0.3, half_length_A);
    const auto [x_lo, x_hi] = std::minmax_element(
        turned.begin(), turned.end(), [](const Atom& p, const Atom& q) { return p.x_A < q.x_A; });
    CHECK(x_hi->x_A - x_lo->x_A == Approx(diameter_formula_A).margin(0.1));
  }
}

TEST_CASE("DWCNT specimen: two coaxial walls, centred without randomisation", "[specimen]") {
  SpecimenConfig config;
  config.kind = SpecimenKind::kDwcnt;
  config.seed = 3;
  config.vacancies = 0;
  config.random_rotation = false;
  config.random_translation = false;
  const double side_A = 23.0;
  const std::vector<Atom> atoms = sim::build_specimen(config, side_A, side_A);
  const double outer_A = sim::nanotube_radius_A(18, 5);
  const double inner_A = sim::nanotube_radius_A(10, 4);
  double y_min = side_A, y_max = 0;
  for (const Atom& t : atoms) {
    y_min = std::min(y_min, t.y_A);
    y_max = std::max(y_max, t.y_A);
  }
  CHECK(y_max - y_min == Approx(2 * outer_A).margin(0.1));
  CHECK((y_max + y_min) / 2 == Approx(side_A / 2).margin(0.1));
  // Both walls: the count per axial length is that of the two tubes together.
  const double a = sim::kGrapheneLatticeA;
  const double length_A = side_A + 2 * sim::kSpecimenMarginA;
  const double expected =
      2 * (2 * kPi * (inner_A + outer_A)) * length_A / (a * a * std::sqrt(3.0) / 2);
  CHECK(double(atoms.size()) == Approx(expected).epsilon(0.03));
}

TEST_CASE("Specimens are reproducible from the seed", "[specimen]") {
  for (SpecimenKind kind : {SpecimenKind::kMoS2, SpecimenKind::kGraphene, SpecimenKind::kDwcnt}) {
    INFO(sim::to_string(kind));
    SpecimenConfig config;
    config.kind = kind;
    config.seed = 42;
    const std::vector<Atom> first = sim::build_specimen(config, 28.0, 28.0);
    const std::vector<Atom> again = sim::build_specimen(config, 28.0, 28.0);
    CHECK(same_atoms(first, again));
    config.seed = 43;
    const std::vector<Atom> other = sim::build_specimen(config, 28.0, 28.0);
    CHECK_FALSE(same_atoms(first, other));
  }
}

TEST_CASE("Without randomisation the lattice is fixed and a Mo sits at the centre", "[specimen]") {
  SpecimenConfig config;
  config.kind = SpecimenKind::kMoS2;
  config.vacancies = 0;
  config.random_rotation = false;
  config.random_translation = false;
  config.seed = 1;
  const std::vector<Atom> first = sim::build_specimen(config, 20.0, 20.0);
  config.seed = 2;
  CHECK(same_atoms(first, sim::build_specimen(config, 20.0, 20.0)));
  const bool centred = std::any_of(first.begin(), first.end(), [](const Atom& t) {
    return t.Z == 42 && std::abs(t.y_A - 10.0) < 1e-9 && std::abs(t.x_A - 10.0) < 1e-9;
  });
  CHECK(centred);
}

TEST_CASE("Vacancies remove exactly that many atoms from inside the field", "[specimen]") {
  for (SpecimenKind kind : {SpecimenKind::kMoS2, SpecimenKind::kGraphene, SpecimenKind::kDwcnt}) {
    INFO(sim::to_string(kind));
    SpecimenConfig config;
    config.kind = kind;
    config.seed = 9;
    config.vacancies = 0;
    const std::vector<Atom> full = sim::build_specimen(config, 23.0, 23.0);
    config.vacancies = 7;
    const std::vector<Atom> holed = sim::build_specimen(config, 23.0, 23.0);
    CHECK(holed.size() + 7 == full.size());
    // The lattice itself is unchanged: the survivors are the full model minus 7 in-field atoms.
    std::size_t j = 0;
    int missing_inside = 0;
    for (const Atom& t : full) {
      if (j < holed.size() && t.y_A == holed[j].y_A && t.x_A == holed[j].x_A && t.Z == holed[j].Z) {
        ++j;
      } else {
        CHECK(inside(t, 23.0, 23.0));
        ++missing_inside;
      }
    }
    CHECK(j == holed.size());
    CHECK(missing_inside == 7);
  }
  SpecimenConfig too_many;
  too_many.vacancies = 100000;
  CHECK_THROWS_AS(sim::build_specimen(too_many, 10.0, 10.0), std::invalid_argument);
}

TEST_CASE("Specimen kind names parse, and unknown names throw", "[specimen]") {
  CHECK(sim::parse_specimen_kind("mos2") == SpecimenKind::kMoS2);
  CHECK(sim::parse_specimen_kind("graphene") == SpecimenKind::kGraphene);
  CHECK(sim::parse_specimen_kind("dwcnt") == SpecimenKind::kDwcnt);
  for (SpecimenKind kind : {SpecimenKind::kMoS2, SpecimenKind::kGraphene, SpecimenKind::kDwcnt}) {
    CHECK(sim::parse_specimen_kind(sim::to_string(kind)) == kind);
  }
  CHECK_THROWS_AS(sim::parse_specimen_kind("MoS2 "), std::invalid_argument);
  CHECK_THROWS_WITH(sim::parse_specimen_kind("wse2"), Catch::Contains("mos2") &&
                                                          Catch::Contains("graphene") &&
                                                          Catch::Contains("dwcnt"));
  CHECK_THROWS_AS(sim::build_specimen(SpecimenConfig{}, 0.0, 10.0), std::invalid_argument);
}

TEST_CASE("A 200 x 200 potential of a full specimen takes well under a second", "[specimen]") {
  SpecimenConfig config;
  config.kind = SpecimenKind::kMoS2;
  config.seed = 7;
  const std::vector<Atom> atoms = sim::build_specimen(config, 28.0, 28.0);
  REQUIRE(atoms.size() >= 400);
  const auto start = std::chrono::steady_clock::now();
  const ptypilot::RealImage v = sim::projected_potential_VA(atoms, 200, 200, 0.14);
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  CHECK(seconds < 1.0);
  // Every pixel is finite and the atom columns reach hundreds of V*A.
  float peak = 0;
  for (float value : v.span()) {
    REQUIRE(std::isfinite(value));
    peak = std::max(peak, value);
  }
  CHECK(peak > 100.0f);
}
