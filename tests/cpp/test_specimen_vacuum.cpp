// The vacuum-rich specimens (MoS2 flake, MoS2 with holes, Au particles on carbon) and the
// material mask: seeding, the stated material fractions of the FOV, atoms only where the mask
// says, and the particles' elements.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <numbers>
#include <stdexcept>
#include <vector>

#include "ptypilot/presets.hpp"
#include "ptypilot/simulator.hpp"
#include "ptypilot/specimen.hpp"

namespace sim = ptypilot::sim;
using ptypilot::RealImage;
using sim::Atom;
using sim::SpecimenConfig;
using sim::SpecimenKind;

namespace {

constexpr SpecimenKind kVacuumKinds[] = {SpecimenKind::kMoS2Flake, SpecimenKind::kMoS2Holes,
                                         SpecimenKind::kNanoparticles};

// A config on mos2-paper's object grid and FOV, as simulate_specimen builds it.
struct OnPreset {
  SpecimenConfig config;
  ptypilot::ObjectGrid grid;
};

OnPreset on_mos2_paper(SpecimenKind kind, std::uint64_t seed) {
  OnPreset p;
  p.grid = sim::experiment_preset("mos2-paper").object_grid();
  p.config.kind = kind;
  p.config.seed = seed;
  p.config.fov_origin_A = p.grid.fov_origin_A;
  p.config.fov_height_A = p.grid.fov_height_A;
  p.config.fov_width_A = p.grid.fov_width_A;
  return p;
}

double fov_fraction(const RealImage& mask, const ptypilot::ObjectGrid& g) {
  const int r0 = static_cast<int>(std::lround(g.fov_origin_A.y / g.pixel_A));
  const int c0 = static_cast<int>(std::lround(g.fov_origin_A.x / g.pixel_A));
  const int r1 = r0 + static_cast<int>(std::lround(g.fov_height_A / g.pixel_A)) + 1;
  const int c1 = c0 + static_cast<int>(std::lround(g.fov_width_A / g.pixel_A)) + 1;
  double sum = 0;
  for (int i = r0; i < r1; ++i)
    for (int j = c0; j < c1; ++j) sum += mask(i, j);
  return sum / ((r1 - r0) * double(c1 - c0));
}

// Whether the mask is 1 at any of the 3 x 3 pixels around the atom (its site may sit between a
// pixel inside the outline and one outside).
bool on_material(const RealImage& mask, double pixel_A, const Atom& a) {
  const int i = static_cast<int>(std::lround(a.y_A / pixel_A));
  const int j = static_cast<int>(std::lround(a.x_A / pixel_A));
  for (int di = -1; di <= 1; ++di) {
    for (int dj = -1; dj <= 1; ++dj) {
      const int y = i + di;
      const int x = j + dj;
      if (y >= 0 && y < mask.rows() && x >= 0 && x < mask.cols() && mask(y, x) > 0) return true;
    }
  }
  return false;
}

bool same_atoms(const std::vector<Atom>& p, const std::vector<Atom>& q) {
  return p.size() == q.size() && std::equal(p.begin(), p.end(), q.begin(), [](auto& a, auto& b) {
           return a.y_A == b.y_A && a.x_A == b.x_A && a.Z == b.Z;
         });
}

}  // namespace

TEST_CASE("Vacuum-rich specimens and their masks are reproducible from the seed", "[specimen]") {
  for (SpecimenKind kind : kVacuumKinds) {
    INFO(sim::to_string(kind));
    OnPreset a = on_mos2_paper(kind, 5);
    const double h = a.grid.rows * a.grid.pixel_A;
    const double w = a.grid.cols * a.grid.pixel_A;
    const std::vector<Atom> first = sim::build_specimen(a.config, h, w);
    CHECK(same_atoms(first, sim::build_specimen(a.config, h, w)));
    const RealImage mask = sim::material_mask(a.config, a.grid.rows, a.grid.cols, a.grid.pixel_A);
    CHECK(mask.vector() ==
          sim::material_mask(a.config, a.grid.rows, a.grid.cols, a.grid.pixel_A).vector());
    OnPreset b = on_mos2_paper(kind, 6);
    CHECK_FALSE(same_atoms(first, sim::build_specimen(b.config, h, w)));
    CHECK(mask.vector() !=
          sim::material_mask(b.config, b.grid.rows, b.grid.cols, b.grid.pixel_A).vector());
  }
}

TEST_CASE("Vacuum-rich specimens cover their stated share of the FOV", "[specimen]") {
  struct Expected {
    SpecimenKind kind;
    double material;
  };
  for (auto [kind, material] : {Expected{SpecimenKind::kMoS2Flake, sim::kFlakeMaterialFraction},
                                Expected{SpecimenKind::kMoS2Holes, 1 - sim::kHolesVacuumFraction},
                                Expected{SpecimenKind::kNanoparticles,
                                         sim::kParticleMaterialFraction}}) {
    for (std::uint64_t seed = 0; seed < 5; ++seed) {
      INFO(sim::to_string(kind) << " seed " << seed);
      const OnPreset p = on_mos2_paper(kind, seed);
      const RealImage mask = sim::material_mask(p.config, p.grid.rows, p.grid.cols, p.grid.pixel_A);
      const double f = fov_fraction(mask, p.grid);
      CHECK(f == Approx(material).margin(0.02));
      // Vacuum and material both reach into the FOV, so the scan sees edges.
      CHECK(f < 0.95);
    }
  }
  // The simulator reports the same share of the same FOV crop.
  const auto& preset = sim::experiment_preset("mos2-flake-paper");
  const sim::SimulatedSpecimen s = sim::simulate_specimen(preset, 3);
  CHECK(sim::fov_material_fraction(s) == Approx(fov_fraction(s.material, s.grid)).margin(1e-12));
  CHECK(sim::fov_material_fraction(s) == Approx(sim::kFlakeMaterialFraction).margin(0.02));
  CHECK(sim::fov_material_fraction(sim::simulate_specimen(sim::experiment_preset("mos2-paper"), 3)) ==
        1.0);
}

TEST_CASE("A chosen material_fraction sets the share of the FOV, and is refused where it cannot",
          "[specimen]") {
  struct Chosen {
    SpecimenKind kind;
    double material;
  };
  for (auto [kind, material] : {Chosen{SpecimenKind::kMoS2Flake, 0.24},
                                Chosen{SpecimenKind::kMoS2Flake, 0.6},
                                Chosen{SpecimenKind::kMoS2Holes, 0.8},
                                Chosen{SpecimenKind::kNanoparticles, 0.12}}) {
    for (std::uint64_t seed = 0; seed < 3; ++seed) {
      INFO(sim::to_string(kind) << " at " << material << ", seed " << seed);
      OnPreset p = on_mos2_paper(kind, seed);
      p.config.material_fraction = material;
      CHECK(sim::design_material_fraction(p.config) == material);
      const RealImage mask = sim::material_mask(p.config, p.grid.rows, p.grid.cols, p.grid.pixel_A);
      CHECK(fov_fraction(mask, p.grid) == Approx(material).margin(0.02));
    }
  }
  // The preset that asks for the nanoparticles' share on a flake gets it.
  const sim::SimulatedSpecimen small =
      sim::simulate_specimen(sim::experiment_preset("mos2-small-flake-paper"), 2);
  CHECK(sim::fov_material_fraction(small) == Approx(sim::kParticleMaterialFraction).margin(0.02));

  OnPreset flake = on_mos2_paper(SpecimenKind::kMoS2Flake, 1);
  CHECK(sim::design_material_fraction(flake.config) == sim::kFlakeMaterialFraction);
  const double h = flake.grid.rows * flake.grid.pixel_A;
  const double w = flake.grid.cols * flake.grid.pixel_A;
  for (double bad : {1.0, 1.5, -0.2, std::nan("")}) {
    INFO("material_fraction " << bad);
    flake.config.material_fraction = bad;
    CHECK_THROWS_WITH(sim::build_specimen(flake.config, h, w),
                      Catch::Contains("material_fraction must lie in (0, 1)"));
    CHECK_THROWS_AS(sim::material_mask(flake.config, flake.grid.rows, flake.grid.cols,
                                       flake.grid.pixel_A),
                    std::invalid_argument);
  }
  OnPreset sheet = on_mos2_paper(SpecimenKind::kMoS2, 1);
  sheet.config.material_fraction = 0.5;
  CHECK_THROWS_WITH(sim::build_specimen(sheet.config, h, w),
                    Catch::Contains("mos2 specimen takes no material_fraction"));
}

TEST_CASE("MoS2 atoms of the flake and the holed sheet lie only on the mask, at full density",
          "[specimen]") {
  constexpr double kPixelA = 0.1;
  constexpr int kSize = 240;  // 24 A, the whole field as FOV
  // 3 atoms (Mo + S2) per hexagonal cell of area a^2 sqrt3 / 2.
  const double density = 3 / (sim::kMoS2LatticeA * sim::kMoS2LatticeA * std::sqrt(3.0) / 2);
  for (SpecimenKind kind : {SpecimenKind::kMoS2Flake, SpecimenKind::kMoS2Holes}) {
    for (std::uint64_t seed : {1, 2}) {
      INFO(sim::to_string(kind) << " seed " << seed);
      SpecimenConfig config;
      config.kind = kind;
      config.seed = seed;
      config.vacancies = 0;
      const std::vector<Atom> atoms = sim::build_specimen(config, kSize * kPixelA, kSize * kPixelA);
      const RealImage mask = sim::material_mask(config, kSize, kSize, kPixelA);
      int inside = 0;
      int off_mask = 0;
      for (const Atom& a : atoms) {
        CHECK((a.Z == 42 || a.Z == 16));
        if (a.y_A < 0 || a.x_A < 0 || a.y_A >= kSize * kPixelA || a.x_A >= kSize * kPixelA) continue;
        ++inside;
        if (!on_material(mask, kPixelA, a)) ++off_mask;
      }
      CHECK(off_mask == 0);
      double area_A2 = 0;
      for (float v : mask.vector()) area_A2 += v * kPixelA * kPixelA;
      CHECK(inside == Approx(density * area_A2).epsilon(0.08));
    }
  }
}

TEST_CASE("Nanoparticles: Au only on the particle discs, a carbon film with 1.4 A spacing",
          "[specimen]") {
  constexpr double kPixelA = 0.1;
  constexpr int kSize = 250;
  const double field_A = kSize * kPixelA;
  for (std::uint64_t seed : {1, 2, 3}) {
    INFO("seed " << seed);
    SpecimenConfig config;
    config.kind = SpecimenKind::kNanoparticles;
    config.seed = seed;
    config.vacancies = 0;
    const std::vector<Atom> atoms = sim::build_specimen(config, field_A, field_A);
    const RealImage mask = sim::material_mask(config, kSize, kSize, kPixelA);
    std::vector<Atom> carbon;
    int gold = 0;
    for (const Atom& a : atoms) {
      REQUIRE((a.Z == 6 || a.Z == 79));
      if (a.Z == 6) {
        carbon.push_back(a);
        continue;
      }
      ++gold;
      CHECK(on_material(mask, kPixelA, a));
    }
    // Clusters, not single atoms: fcc density 4 / a^3 times the particles' volume is at least
    // two 2.6 A spheres.
    CHECK(gold >= 8);
    double closest = 1e9;
    for (std::size_t i = 0; i < carbon.size(); ++i)
      for (std::size_t j = i + 1; j < carbon.size(); ++j)
        closest = std::min(closest, std::hypot(carbon[i].y_A - carbon[j].y_A,
                                               carbon[i].x_A - carbon[j].x_A));
    CHECK(closest >= sim::kSupportSpacingA);
    const double span_A = field_A + 2 * sim::kSpecimenMarginA;
    CHECK(double(carbon.size()) == Approx(sim::kSupportDensityPerA2 * span_A * span_A).margin(1));
    // The film spreads over the field and its margin alike.
    int in_field = 0;
    double lowest = 0, highest = 0;
    for (const Atom& c : carbon) {
      in_field += c.y_A >= 0 && c.x_A >= 0 && c.y_A < field_A && c.x_A < field_A;
      lowest = std::min({lowest, c.y_A, c.x_A});
      highest = std::max({highest, c.y_A, c.x_A});
    }
    CHECK(in_field == Approx(sim::kSupportDensityPerA2 * field_A * field_A).epsilon(0.2));
    CHECK(lowest < -sim::kSpecimenMarginA + 1);
    CHECK(highest > field_A + sim::kSpecimenMarginA - 1);
  }
  SpecimenConfig tiny;
  tiny.kind = SpecimenKind::kNanoparticles;
  // 2 or 3 particles of 24 % of a 3 A field cannot keep 2 A apart.
  CHECK_THROWS_AS(sim::build_specimen(tiny, 3.0, 3.0), std::invalid_argument);
}

TEST_CASE("Masks of the continuous specimens: all of MoS2, the DWCNT's band", "[specimen]") {
  constexpr double kPixelA = 0.1;
  constexpr int kSize = 280;
  SpecimenConfig config;
  config.kind = SpecimenKind::kMoS2;
  const RealImage all = sim::material_mask(config, kSize, kSize, kPixelA);
  CHECK(std::all_of(all.vector().begin(), all.vector().end(), [](float v) { return v == 1; }));

  config.kind = SpecimenKind::kDwcnt;
  config.seed = 4;
  const RealImage band = sim::material_mask(config, kSize, kSize, kPixelA);
  for (const Atom& a : sim::build_specimen(config, kSize * kPixelA, kSize * kPixelA)) {
    if (a.y_A < 0 || a.x_A < 0 || a.y_A >= kSize * kPixelA || a.x_A >= kSize * kPixelA) continue;
    CHECK(on_material(band, kPixelA, a));
  }
  double area = 0;
  for (float v : band.vector()) area += v;
  // The band is 2 outer radii wide, its axis runs through the middle half of the field (so at
  // least half a side of it lies inside) and no longer than the diagonal.
  const double width_px = 2 * sim::nanotube_radius_A(18, 5) / kPixelA;
  CHECK(area >= width_px * kSize * 0.5);
  CHECK(area <= width_px * kSize * std::sqrt(2.0) * 1.05);
}

TEST_CASE("A FOV outside the field is rejected", "[specimen]") {
  SpecimenConfig config;
  config.kind = SpecimenKind::kMoS2Flake;
  config.fov_origin_A = {5.0, 5.0};
  config.fov_height_A = 20.0;
  config.fov_width_A = 10.0;
  CHECK_THROWS_AS(sim::build_specimen(config, 20.0, 20.0), std::invalid_argument);
  CHECK_THROWS_AS(sim::material_mask(config, 200, 200, 0.1), std::invalid_argument);
  CHECK_NOTHROW(sim::build_specimen(config, 30.0, 30.0));
}

TEST_CASE("Kirkland's Au parameters: the Lorentzian coefficients give the Mott-Bethe tail",
          "[specimen]") {
  // At large q, f_e(q) -> Z / (2 pi^2 a0 q^2): the a_i of the fit must sum to Z / (2 pi^2 a0).
  // A transposed or mistyped a_i breaks it; the fit meets it within a few per cent.
  for (int Z : {6, 16, 42, 79}) {
    INFO("Z = " << Z);
    const auto& p = sim::kirkland_parameters(Z);
    const double mott_bethe = Z / (2 * std::numbers::pi * std::numbers::pi * 0.529177);
    CHECK(p.a[0] + p.a[1] + p.a[2] == Approx(mott_bethe).epsilon(0.05));
  }
  CHECK(sim::electron_scattering_factor_A(79, 0.5) > sim::electron_scattering_factor_A(42, 0.5));
}
