// Specimens with vacuum in the field, and the material mask of every specimen kind. Published
// gains of adaptive scanning come where the information is sparse (vacuum, edges, isolated
// particles); a continuous sheet gives a strategy nothing to skip.
#include <algorithm>
#include <array>
#include <cmath>
#include <cstddef>
#include <functional>
#include <limits>
#include <numbers>
#include <stdexcept>
#include <string>
#include <vector>

#include "ptypilot/specimen.hpp"
#include "specimen_internal.hpp"

namespace ptypilot::sim {
namespace detail {
namespace {

constexpr double kPi = std::numbers::pi;

// Outline harmonics k = 2 .. 9 with amplitudes up to kOutlineWaviness / k: the outline keeps a
// positive radius (sum of 0.4 / k below 0.75) and looks like a torn flake, not a polygon.
constexpr int kFirstHarmonic = 2;
constexpr int kHarmonics = 8;
constexpr double kOutlineWaviness = 0.4;

// The FOV is sampled on this many points per side to size the outlines: 1 part in 16,000.
constexpr int kFractionSamples = 128;

// The flake's centre lies within this fraction of the FOV side from the FOV centre.
constexpr double kFlakeOffsetFraction = 0.1;
constexpr int kMinHoles = 3;
constexpr int kHoleCountChoices = 3;  // 3, 4 or 5
constexpr int kMinParticles = 2;
constexpr int kParticleCountChoices = 2;  // 2 or 3
constexpr double kParticleSizeSpread = 0.15;  // radii within +-15 % of their mean
constexpr double kParticleGapA = 2.0;         // between the edges of two particles
constexpr int kPlacementAttempts = 200;  // per particle, in one layout
constexpr int kPlacementLayouts = 1000;
constexpr int kAu = 79;
constexpr int kC = 6;

// Star-shaped about its centre: radius r(theta) = radius_A (1 + sum_k a_k cos(k theta + phi_k)).
struct Outline {
  Vec2 center_A;
  double radius_A = 1.0;
  std::array<double, kHarmonics> amplitude{};
  std::array<double, kHarmonics> phase{};

  // The smallest factor by which the outline must grow to hold p (< 1: p is inside).
  double growth_to_hold(Vec2 p) const {
    const Vec2 d = p - center_A;
    const double theta = std::atan2(d.y, d.x);
    double edge = 1.0;
    for (int k = 0; k < kHarmonics; ++k) {
      edge += amplitude[k] * std::cos((k + kFirstHarmonic) * theta + phase[k]);
    }
    return std::hypot(d.y, d.x) / (radius_A * edge);
  }
};

Outline wavy_outline(Vec2 center_A, double radius_A, Rng& rng) {
  Outline o{center_A, radius_A, {}, {}};
  for (int k = 0; k < kHarmonics; ++k) {
    o.amplitude[k] = kOutlineWaviness / (k + kFirstHarmonic) * rng.uniform();
    o.phase[k] = 2 * kPi * rng.uniform();
  }
  return o;
}

// A particle: a disc in projection, and the orientation of its lattice.
struct Particle {
  Vec2 center_A;
  double radius_A;
  double rotation_rad;
  std::array<double, 3> shift;  // of the fcc lattice, in cubic cells
};

struct Region {
  std::vector<Outline> outlines;  // flake or holes
  bool material_inside = true;    // false: the outlines are holes
  std::vector<Particle> particles;

  bool in_outlines(Vec2 p) const {
    return std::any_of(outlines.begin(), outlines.end(),
                       [&](const Outline& o) { return o.growth_to_hold(p) < 1.0; });
  }
  bool material(Vec2 p) const {
    if (!particles.empty()) {
      return std::any_of(particles.begin(), particles.end(), [&](const Particle& q) {
        return std::hypot(p.y - q.center_A.y, p.x - q.center_A.x) <= q.radius_A;
      });
    }
    return in_outlines(p) == material_inside;
  }
};

// Scales every outline by one factor so that they cover `fraction` of the FOV together. The
// union grows monotonically with the factor, so the factor is a quantile of the per-point
// growth each sample of the FOV needs to be covered.
void scale_to_fraction(std::vector<Outline>& outlines, double fraction, const Field& field) {
  std::vector<double> growth;
  growth.reserve(kFractionSamples * kFractionSamples);
  for (int i = 0; i < kFractionSamples; ++i) {
    for (int j = 0; j < kFractionSamples; ++j) {
      const Vec2 p = field.fov_origin_A + Vec2{(i + 0.5) / kFractionSamples * field.fov_height_A,
                                               (j + 0.5) / kFractionSamples * field.fov_width_A};
      double g = std::numeric_limits<double>::infinity();
      for (const Outline& o : outlines) g = std::min(g, o.growth_to_hold(p));
      growth.push_back(g);
    }
  }
  const auto k = static_cast<std::size_t>(std::lround(fraction * growth.size()));
  std::nth_element(growth.begin(), growth.begin() + k, growth.end());
  const double above = growth[k];
  const double below = *std::max_element(growth.begin(), growth.begin() + k);
  const double factor = (above + below) / 2;
  for (Outline& o : outlines) o.radius_A *= factor;
}

double fov_side_A(const Field& field) { return std::min(field.fov_height_A, field.fov_width_A); }

Vec2 uniform_in_fov(const Field& field, double inset_A, Rng& rng) {
  const double u = rng.uniform();
  const double v = rng.uniform();
  return field.fov_origin_A + Vec2{inset_A + u * (field.fov_height_A - 2 * inset_A),
                                   inset_A + v * (field.fov_width_A - 2 * inset_A)};
}

std::vector<Particle> place_particles(const Field& field, double material_fraction, Rng& rng) {
  const int count = kMinParticles + static_cast<int>(rng.index(kParticleCountChoices));
  std::vector<double> relative(count);
  double sum_squares = 0.0;
  for (double& r : relative) {
    r = 1.0 + kParticleSizeSpread * (2 * rng.uniform() - 1);
    sum_squares += r * r;
  }
  const double fov_area_A2 = field.fov_height_A * field.fov_width_A;
  const double scale_A = std::sqrt(material_fraction * fov_area_A2 / (kPi * sum_squares));

  // Random sequential placement can corner itself (two particles leaving no room for a
  // third), so a layout that fails is drawn again from the start.
  std::vector<Particle> particles;
  for (int layout = 0; layout < kPlacementLayouts && particles.size() < std::size_t(count);
       ++layout) {
    particles.clear();
    for (int n = 0; n < count; ++n) {
      Particle p{{}, relative[n] * scale_A, 2 * kPi * rng.uniform(),
                 {rng.uniform(), rng.uniform(), rng.uniform()}};
      // Wholly inside the FOV, so that the discs cover exactly the stated fraction of it.
      bool placed = false;
      for (int attempt = 0; attempt < kPlacementAttempts && !placed; ++attempt) {
        p.center_A = uniform_in_fov(field, p.radius_A, rng);
        placed = std::none_of(particles.begin(), particles.end(), [&](const Particle& q) {
          return std::hypot(p.center_A.y - q.center_A.y, p.center_A.x - q.center_A.x) <
                 p.radius_A + q.radius_A + kParticleGapA;
        });
      }
      if (!placed) break;
      particles.push_back(p);
    }
  }
  if (particles.size() < std::size_t(count)) {
    throw std::invalid_argument("build_specimen: the FOV is too small to hold " +
                                std::to_string(count) + " particles apart");
  }
  return particles;
}

// After the common draws: everything the outline of the material needs, and nothing else, so
// that material_mask and build_specimen agree by construction.
Region draw_region(const SpecimenConfig& config, const Field& field, Rng& rng) {
  Region region;
  switch (config.kind) {
    case SpecimenKind::kMoS2Flake: {
      const double offset = kFlakeOffsetFraction * fov_side_A(field);
      const Vec2 center =
          field.fov_center() + Vec2{offset * (2 * rng.uniform() - 1), offset * (2 * rng.uniform() - 1)};
      region.outlines.push_back(wavy_outline(center, 1.0, rng));
      scale_to_fraction(region.outlines, design_material_fraction(config), field);
      break;
    }
    case SpecimenKind::kMoS2Holes: {
      const int count = kMinHoles + static_cast<int>(rng.index(kHoleCountChoices));
      for (int n = 0; n < count; ++n) {
        const Vec2 center = uniform_in_fov(field, 0.0, rng);
        region.outlines.push_back(wavy_outline(center, 0.6 + 0.8 * rng.uniform(), rng));
      }
      scale_to_fraction(region.outlines, 1 - design_material_fraction(config), field);
      region.material_inside = false;
      break;
    }
    case SpecimenKind::kNanoparticles:
      region.particles = place_particles(field, design_material_fraction(config), rng);
      break;
    default:
      break;
  }
  return region;
}

// fcc Au, [001] along the beam: the atoms of the lattice (offset by the particle's shift) that
// lie within the particle's radius of its centre in 3-D, projected.
void add_particle_atoms(const Particle& p, std::vector<Atom>& atoms) {
  const double half_A = kGoldLatticeA / 2;
  const int n_max = static_cast<int>(std::ceil(p.radius_A / half_A)) + 2;
  for (int i = -n_max; i <= n_max; ++i) {
    for (int j = -n_max; j <= n_max; ++j) {
      for (int k = -n_max; k <= n_max; ++k) {
        if ((i + j + k) % 2 != 0) continue;
        const double y = (i + 2 * p.shift[0]) * half_A;
        const double x = (j + 2 * p.shift[1]) * half_A;
        const double z = (k + 2 * p.shift[2]) * half_A;
        if (y * y + x * x + z * z > p.radius_A * p.radius_A) continue;
        const Vec2 at = p.center_A + rotate({y, x}, p.rotation_rad);
        atoms.push_back({at.y, at.x, kAu});
      }
    }
  }
}

// Random sequential placement with a minimum spacing, on a grid of cells one spacing wide so
// that each candidate is checked against its 3 x 3 cells only.
void add_carbon_support(const Field& field, Rng& rng, std::vector<Atom>& atoms) {
  const double lo_y = -kSpecimenMarginA;
  const double lo_x = -kSpecimenMarginA;
  const double span_y = field.height_A + 2 * kSpecimenMarginA;
  const double span_x = field.width_A + 2 * kSpecimenMarginA;
  const auto count = static_cast<std::size_t>(std::lround(kSupportDensityPerA2 * span_y * span_x));
  const int cells_y = static_cast<int>(std::ceil(span_y / kSupportSpacingA));
  const int cells_x = static_cast<int>(std::ceil(span_x / kSupportSpacingA));
  std::vector<std::vector<Vec2>> cells(static_cast<std::size_t>(cells_y) * cells_x);
  auto cell_of = [&](double v, double lo, int n) {
    return std::clamp(static_cast<int>((v - lo) / kSupportSpacingA), 0, n - 1);
  };

  std::size_t placed = 0;
  const std::size_t max_attempts = 100 * count + 100;
  for (std::size_t attempt = 0; placed < count && attempt < max_attempts; ++attempt) {
    const Vec2 p{lo_y + rng.uniform() * span_y, lo_x + rng.uniform() * span_x};
    const int cy = cell_of(p.y, lo_y, cells_y);
    const int cx = cell_of(p.x, lo_x, cells_x);
    bool free = true;
    for (int dy = -1; dy <= 1 && free; ++dy) {
      for (int dx = -1; dx <= 1 && free; ++dx) {
        const int y = cy + dy;
        const int x = cx + dx;
        if (y < 0 || y >= cells_y || x < 0 || x >= cells_x) continue;
        for (const Vec2& q : cells[std::size_t(y) * cells_x + x]) {
          if (std::hypot(p.y - q.y, p.x - q.x) < kSupportSpacingA) free = false;
        }
      }
    }
    if (!free) continue;
    cells[std::size_t(cy) * cells_x + cx].push_back(p);
    atoms.push_back({p.y, p.x, kC});
    ++placed;
  }
  // At a packing fraction of 0.15 random placement is nowhere near jamming (0.55).
  if (placed < count) throw std::logic_error("carbon support: spacing too tight for its density");
}

}  // namespace

std::vector<Atom> vacuum_specimen(const Draws& draws, const SpecimenConfig& config,
                                  const Field& field, Rng& rng) {
  const Region region = draw_region(config, field, rng);
  std::vector<Atom> atoms;
  if (config.kind == SpecimenKind::kNanoparticles) {
    add_carbon_support(field, rng, atoms);
    for (const Particle& p : region.particles) add_particle_atoms(p, atoms);
    return atoms;
  }
  atoms = mos2(draws, config, field);
  std::erase_if(atoms, [&](const Atom& a) { return !region.material({a.y_A, a.x_A}); });
  return atoms;
}

}  // namespace detail

RealImage material_mask(const SpecimenConfig& config, int rows, int cols, double pixel_A) {
  using namespace detail;
  if (rows <= 0 || cols <= 0) throw std::invalid_argument("material_mask: empty grid");
  const Field field = make_field(config, rows * pixel_A, cols * pixel_A);
  Rng rng(config.seed);
  const Draws draws = draw(rng);

  std::function<bool(Vec2)> material;
  Region region;
  switch (config.kind) {
    case SpecimenKind::kMoS2:
    case SpecimenKind::kGraphene:
    case SpecimenKind::kMoS2GrainBoundary:
      material = [](Vec2) { return true; };
      break;
    case SpecimenKind::kDwcnt: {
      const TubeAxis axis = dwcnt_axis(draws, config, field);
      const auto [n, m] = kDwcntOuterChirality;
      const double radius_A = nanotube_radius_A(n, m);
      material = [axis, radius_A](Vec2 p) {
        const Vec2 d = p - axis.center_A;
        return std::abs(d.y * std::cos(axis.angle_rad) - d.x * std::sin(axis.angle_rad)) <=
               radius_A;
      };
      break;
    }
    case SpecimenKind::kMoS2Flake:
    case SpecimenKind::kMoS2Holes:
    case SpecimenKind::kNanoparticles:
      region = draw_region(config, field, rng);
      material = [&region](Vec2 p) { return region.material(p); };
      break;
  }
  RealImage mask(rows, cols);
  for (int i = 0; i < rows; ++i) {
    for (int j = 0; j < cols; ++j) mask(i, j) = material({i * pixel_A, j * pixel_A}) ? 1.0f : 0.0f;
  }
  return mask;
}

}  // namespace ptypilot::sim
