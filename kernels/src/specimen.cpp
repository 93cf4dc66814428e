#include "ptypilot/specimen.hpp"

#include <algorithm>
#include <cmath>
#include <complex>
#include <cstddef>
#include <limits>
#include <map>
#include <numbers>
#include <random>
#include <stdexcept>
#include <string>
#include <utility>

#include "ptypilot/fft.hpp"
#include "specimen_internal.hpp"

namespace ptypilot::sim {
namespace detail {

Draws draw(Rng& rng) {
  Draws d{};
  d.rotation = rng.uniform();
  d.shift_a = rng.uniform();
  d.shift_b = rng.uniform();
  d.spin = rng.uniform();
  return d;
}

Vec2 rotate(Vec2 p, double angle_rad) {
  const double c = std::cos(angle_rad);
  const double s = std::sin(angle_rad);
  return {p.x * s + p.y * c, p.x * c - p.y * s};
}

double Field::reach_A(double margin_A) const {
  return std::hypot(height_A / 2 + margin_A, width_A / 2 + margin_A);
}

}  // namespace detail

namespace {

using namespace detail;

constexpr double kPi = std::numbers::pi;
constexpr double kSqrt3 = std::numbers::sqrt3;
constexpr double kBohrRadiusA = 0.529177;
// e / (4 pi eps0) per unit charge, so that e^2 / (4 pi eps0) = 14.39964 eV*A (Kirkland's "e").
constexpr double kElementaryChargeVA = 14.39964;
// v_z(r) = 2 pi a0 e * integral f_e(q) exp(2 pi i q.r) d^2q (Kirkland ch. 5); 47.878 V*A^2.
constexpr double kFormFactorToPotentialVA2 = 2.0 * kPi * kBohrRadiusA * kElementaryChargeVA;

// The potential is band-limited to 2/3 of the Nyquist frequency so that the transmission
// function exp(i sigma v) built from it does not alias. A hard edge there rings around every
// atom core (the 1/q^2 tail of f_e is cut): at 3 A from a carbon atom the ringing is six times
// the potential itself. A roll-off whose every derivative is continuous makes the ringing decay
// faster than any power of r, and starting it at 0.6 of the cut-off keeps the whole band of
// ptychographic information (2 alpha / lambda = 1.36 / A at 60 kV, 33 mrad) untouched at the
// paper's 0.14 A pixel. With a 0.05 A pixel the result is within 2% of Kirkland's real-space
// v_z for C, S and Mo between 0.7 and 3 A; at 0.14 A the cut falls where f_e is still large and
// the band-limited core necessarily differs from the analytic one by tens of percent within ~1.5 A.
constexpr double kBandLimitFraction = 2.0 / 3.0;
constexpr double kRollOffStartFraction = 0.6;

// One basis site of a hexagonal lattice; `count` atoms stacked in projection at the site.
struct Site {
  Vec2 offset_A;
  int Z;
  int count;
};

// Hexagonal lattice, a1 = (0, a) and a2 = (a sqrt3 / 2, a / 2) in (y, x) before rotation.
std::vector<Atom> hexagonal_lattice(double a_A, std::span<const Site> basis, const Draws& draws,
                                    const SpecimenConfig& config, const Field& field) {
  const Vec2 a1{0.0, a_A};
  const Vec2 a2{a_A * kSqrt3 / 2, a_A / 2};
  const double angle_rad = config.random_rotation ? 2 * kPi * draws.rotation : 0.0;
  const Vec2 shift = config.random_translation ? draws.shift_a * a1 + draws.shift_b * a2 : Vec2{};
  // |n1|, |n2| <= 2 |r| / (a sqrt3) for a lattice vector r, so this range covers the reach.
  const double reach_A = field.reach_A(kSpecimenMarginA) + 2 * a_A;
  const int n_max = static_cast<int>(std::ceil(2 * reach_A / a_A)) + 1;

  std::vector<Atom> atoms;
  for (int n1 = -n_max; n1 <= n_max; ++n1) {
    for (int n2 = -n_max; n2 <= n_max; ++n2) {
      const Vec2 cell = double(n1) * a1 + double(n2) * a2 + shift;
      for (const Site& site : basis) {
        const Vec2 p = field.center() + rotate(cell + site.offset_A, angle_rad);
        if (!field.contains(p, kSpecimenMarginA)) continue;
        for (int k = 0; k < site.count; ++k) atoms.push_back({p.y, p.x, site.Z});
      }
    }
  }
  return atoms;
}

}  // namespace

namespace detail {

std::vector<Atom> mos2(const Draws& draws, const SpecimenConfig& config, const Field& field) {
  const double a = kMoS2LatticeA;
  // 2H monolayer seen along c: Mo on one honeycomb sublattice, the S above and below it stacked
  // on the other, so each S site carries two atoms.
  const Site basis[] = {{{0.0, 0.0}, 42, 1}, {{a * kSqrt3 / 6, a / 2}, 16, 2}};
  return hexagonal_lattice(a, basis, draws, config, field);
}

TubeAxis dwcnt_axis(const Draws& draws, const SpecimenConfig& config, const Field& field) {
  TubeAxis axis{field.center(), config.random_rotation ? 2 * kPi * draws.rotation : 0.0};
  if (config.random_translation) {
    // Anywhere in the middle half of the field, so both walls of the outer tube stay in view.
    axis.center_A.y += (draws.shift_a - 0.5) * field.height_A / 2;
    axis.center_A.x += (draws.shift_b - 0.5) * field.width_A / 2;
  }
  return axis;
}

}  // namespace detail

namespace {

std::vector<Atom> graphene(const Draws& draws, const SpecimenConfig& config, const Field& field) {
  const double a = kGrapheneLatticeA;
  const Site basis[] = {{{0.0, 0.0}, 6, 1}, {{a * kSqrt3 / 6, a / 2}, 6, 1}};
  return hexagonal_lattice(a, basis, draws, config, field);
}

std::vector<Atom> dwcnt(const Draws& draws, const SpecimenConfig& config, const Field& field) {
  const auto [center, axis_angle_rad] = dwcnt_axis(draws, config, field);
  const double offset_A = std::hypot(center.y - field.center().y, center.x - field.center().x);
  const double half_length_A = field.reach_A(kSpecimenMarginA) + offset_A + kGrapheneLatticeA;

  const auto [n_in, m_in] = kDwcntInnerChirality;
  const auto [n_out, m_out] = kDwcntOuterChirality;
  std::vector<Atom> atoms =
      project_nanotube(n_in, m_in, center, axis_angle_rad, 0.0, half_length_A);
  const std::vector<Atom> outer =
      project_nanotube(n_out, m_out, center, axis_angle_rad, 2 * kPi * draws.spin, half_length_A);
  atoms.insert(atoms.end(), outer.begin(), outer.end());
  std::erase_if(atoms, [&](const Atom& atom) {
    return !field.contains({atom.y_A, atom.x_A}, kSpecimenMarginA);
  });
  return atoms;
}

void remove_vacancies(std::vector<Atom>& atoms, int count, const Field& field, Rng& rng) {
  std::vector<std::size_t> inside;
  for (std::size_t i = 0; i < atoms.size(); ++i) {
    if (field.contains({atoms[i].y_A, atoms[i].x_A}, 0.0)) inside.push_back(i);
  }
  if (static_cast<std::size_t>(count) > inside.size()) {
    throw std::invalid_argument("build_specimen: " + std::to_string(count) +
                                " vacancies requested but only " + std::to_string(inside.size()) +
                                " atoms lie in the field");
  }
  // Partial Fisher-Yates: the first `count` entries become a uniform random subset.
  std::vector<bool> removed(atoms.size(), false);
  for (std::size_t i = 0; i < static_cast<std::size_t>(count); ++i) {
    std::swap(inside[i], inside[i + rng.index(inside.size() - i)]);
    removed[inside[i]] = true;
  }
  std::size_t kept = 0;
  for (std::size_t i = 0; i < atoms.size(); ++i) {
    if (!removed[i]) atoms[kept++] = atoms[i];
  }
  atoms.resize(kept);
}

// --- Potential -------------------------------------------------------------------------------

// Smallest n' >= n with no prime factor above 7, where FFTW is fastest.
int fft_friendly_size(int n) {
  for (int m = std::max(n, 1);; ++m) {
    int r = m;
    for (int p : {2, 3, 5, 7}) {
      while (r % p == 0) r /= p;
    }
    if (r == 1) return m;
  }
}

// exp(-1 / x): zero with all its derivatives at x = 0, the seed of a C-infinity step.
double smooth_seed(double x) { return x > 0 ? std::exp(-1.0 / x) : 0.0; }

// 1 up to the roll-off start, 0 from q_cut on, a C-infinity step in between.
double band_limit_weight(double q_per_A, double q_cut_per_A) {
  const double q_start = kRollOffStartFraction * q_cut_per_A;
  if (q_per_A <= q_start) return 1.0;
  if (q_per_A >= q_cut_per_A) return 0.0;
  const double t = (q_per_A - q_start) / (q_cut_per_A - q_start);
  return smooth_seed(1.0 - t) / (smooth_seed(1.0 - t) + smooth_seed(t));
}

// exp(-2 pi i k t) with t = position / period; the phase is reduced in double before the
// sine and cosine so large k * t keeps full precision.
std::complex<double> phase(int k, double t) {
  double turns = k * t;
  turns -= std::floor(turns);
  const double angle = -2 * kPi * turns;
  return {std::cos(angle), std::sin(angle)};
}

}  // namespace

namespace detail {

Field make_field(const SpecimenConfig& config, double height_A, double width_A) {
  design_material_fraction(config);  // throws for a share the kind does not take
  if (!(height_A > 0 && width_A > 0) || !std::isfinite(height_A) || !std::isfinite(width_A)) {
    throw std::invalid_argument("build_specimen: the field must have a finite, positive size");
  }
  Field field{height_A, width_A, {0.0, 0.0}, height_A, width_A};
  if (config.fov_height_A > 0 || config.fov_width_A > 0) {
    field.fov_origin_A = config.fov_origin_A;
    field.fov_height_A = config.fov_height_A;
    field.fov_width_A = config.fov_width_A;
    const Vec2 far = field.fov_origin_A + Vec2{field.fov_height_A, field.fov_width_A};
    if (!(field.fov_height_A > 0 && field.fov_width_A > 0) ||
        !field.contains(field.fov_origin_A, 0.0) || !field.contains(far, 0.0)) {
      throw std::invalid_argument("build_specimen: the FOV must have a positive size and lie "
                                  "inside the field");
    }
  }
  return field;
}

}  // namespace detail

namespace {

constexpr std::pair<SpecimenKind, const char*> kKindNames[] = {
    {SpecimenKind::kMoS2, "mos2"},
    {SpecimenKind::kGraphene, "graphene"},
    {SpecimenKind::kDwcnt, "dwcnt"},
    {SpecimenKind::kMoS2Flake, "mos2-flake"},
    {SpecimenKind::kMoS2Holes, "mos2-holes"},
    {SpecimenKind::kNanoparticles, "nanoparticles"},
    {SpecimenKind::kMoS2GrainBoundary, "mos2-grain-boundary"},
};

}  // namespace

SpecimenKind parse_specimen_kind(std::string_view name) {
  std::string valid;
  for (const auto& [kind, kind_name] : kKindNames) {
    if (name == kind_name) return kind;
    valid += (valid.empty() ? "" : ", ") + std::string(kind_name);
  }
  throw std::invalid_argument("unknown specimen kind '" + std::string(name) + "' (valid: " +
                              valid + ")");
}

const char* to_string(SpecimenKind kind) {
  for (const auto& [known, name] : kKindNames) {
    if (known == kind) return name;
  }
  return "unknown";
}

double design_material_fraction(const SpecimenConfig& config) {
  double own = 0.0;
  switch (config.kind) {
    case SpecimenKind::kMoS2Flake:
      own = kFlakeMaterialFraction;
      break;
    case SpecimenKind::kMoS2Holes:
      own = 1 - kHolesVacuumFraction;
      break;
    case SpecimenKind::kNanoparticles:
      own = kParticleMaterialFraction;
      break;
    case SpecimenKind::kMoS2:
    case SpecimenKind::kGraphene:
    case SpecimenKind::kMoS2GrainBoundary:
    case SpecimenKind::kDwcnt:
      if (config.material_fraction != 0.0) {
        throw std::invalid_argument(std::string("build_specimen: a ") + to_string(config.kind) +
                                    " specimen takes no material_fraction");
      }
      return config.kind == SpecimenKind::kDwcnt ? 0.0 : 1.0;
  }
  if (config.material_fraction == 0.0) return own;
  if (!(config.material_fraction > 0.0 && config.material_fraction < 1.0)) {
    throw std::invalid_argument("build_specimen: material_fraction must lie in (0, 1), not " +
                                std::to_string(config.material_fraction));
  }
  return config.material_fraction;
}

std::vector<Atom> build_specimen(const SpecimenConfig& config, double height_A, double width_A) {
  const Field field = make_field(config, height_A, width_A);
  if (config.vacancies < 0) throw std::invalid_argument("build_specimen: vacancies < 0");
  Rng rng(config.seed);
  const Draws draws = draw(rng);

  std::vector<Atom> atoms;
  switch (config.kind) {
    case SpecimenKind::kMoS2:
      atoms = mos2(draws, config, field);
      break;
    case SpecimenKind::kGraphene:
      atoms = graphene(draws, config, field);
      break;
    case SpecimenKind::kDwcnt:
      atoms = dwcnt(draws, config, field);
      break;
    case SpecimenKind::kMoS2Flake:
    case SpecimenKind::kMoS2Holes:
    case SpecimenKind::kNanoparticles:
      atoms = vacuum_specimen(draws, config, field, rng);
      break;
    case SpecimenKind::kMoS2GrainBoundary:
      atoms = grain_boundary(draws, config, field, rng);
      break;
  }
  remove_vacancies(atoms, config.vacancies, field, rng);
  return atoms;
}

double nanotube_radius_A(int n, int m) {
  if (n < 0 || m < 0 || n + m == 0) {
    throw std::invalid_argument("nanotube chirality (n, m) needs n, m >= 0, not both zero");
  }
  return kGrapheneLatticeA * std::sqrt(double(n * n + n * m + m * m)) / (2 * kPi);
}

std::vector<Atom> project_nanotube(int n, int m, Vec2 center_A, double axis_angle_rad,
                                   double spin_rad, double half_length_A) {
  const double radius_A = nanotube_radius_A(n, m);
  if (!(half_length_A > 0)) throw std::invalid_argument("project_nanotube: half_length_A <= 0");
  const double a = kGrapheneLatticeA;

  // The unrolled sheet, in a frame of its own: a1 = a (sqrt3/2, 1/2), a2 = a (sqrt3/2, -1/2).
  // The chiral vector C = n a1 + m a2 becomes the circumference, its normal the tube axis.
  const double circumference_A = 2 * kPi * radius_A;
  const double c1 = a * kSqrt3 / 2 * (n + m) / circumference_A;  // unit vector along C
  const double c2 = a / 2 * (n - m) / circumference_A;
  const double basis_b = a / kSqrt3;  // second carbon at (a1 + a2) / 3 = (a / sqrt3, 0)

  // Each atom of the tube appears once: cells are taken with C-coordinate in [0, |C|), decided
  // exactly in integers. p.C = (a^2 / 2) K and |C|^2 = (a^2 / 2) K_C, with K and K_C below.
  const long k_per_i = 2L * n + m;
  const long k_per_j = long(n) + 2L * m;
  const long k_circumference = 2L * (long(n) * n + long(n) * m + long(m) * m);

  const double reach_A = std::hypot(circumference_A, half_length_A + a);
  const int n_max = static_cast<int>(std::ceil(2 * reach_A / a)) + 1;
  const Vec2 axis{std::sin(axis_angle_rad), std::cos(axis_angle_rad)};
  const Vec2 across{std::cos(axis_angle_rad), -std::sin(axis_angle_rad)};

  std::vector<Atom> atoms;
  for (int i = -n_max; i <= n_max; ++i) {
    for (int j = -n_max; j <= n_max; ++j) {
      const long k = k_per_i * i + k_per_j * j;
      if (k < 0 || k >= k_circumference) continue;
      const double p1 = a * kSqrt3 / 2 * (i + j);
      const double p2 = a / 2 * (i - j);
      for (double b : {0.0, basis_b}) {
        const double around_A = (p1 + b) * c1 + p2 * c2;
        const double along_A = -(p1 + b) * c2 + p2 * c1;
        if (along_A < -half_length_A || along_A >= half_length_A) continue;
        // Beam along z, perpendicular to the axis: only R cos(phi) survives the projection.
        const double phi_rad = 2 * kPi * around_A / circumference_A + spin_rad;
        const Vec2 p = center_A + along_A * axis + radius_A * std::cos(phi_rad) * across;
        atoms.push_back({p.y, p.x, 6});
      }
    }
  }
  return atoms;
}

double electron_scattering_factor_A(int Z, double q_per_A) {
  const KirklandParameters& p = kirkland_parameters(Z);
  const double q2 = q_per_A * q_per_A;
  double f = 0.0;
  for (int i = 0; i < 3; ++i) f += p.a[i] / (q2 + p.b[i]) + p.c[i] * std::exp(-p.d[i] * q2);
  return f;
}

double atom_projected_potential_VA(int Z, double r_A) {
  if (!(r_A > 0)) throw std::invalid_argument("atom_projected_potential_VA: r_A must be > 0");
  const KirklandParameters& p = kirkland_parameters(Z);
  // Term by term the 2-D inverse Fourier transform of f_e: a / (q^2 + b) -> 2 pi a K0(2 pi r
  // sqrt b), c exp(-d q^2) -> c (pi / d) exp(-pi^2 r^2 / d); times 2 pi a0 e.
  double lorentzians = 0.0;
  double gaussians = 0.0;
  for (int i = 0; i < 3; ++i) {
    lorentzians += p.a[i] * std::cyl_bessel_k(0.0, 2 * kPi * r_A * std::sqrt(p.b[i]));
    gaussians += p.c[i] / p.d[i] * std::exp(-kPi * kPi * r_A * r_A / p.d[i]);
  }
  return kFormFactorToPotentialVA2 * (2 * kPi * lorentzians + kPi * gaussians);
}

RealImage projected_potential_VA(std::span<const Atom> atoms, int rows, int cols, double pixel_A) {
  if (rows <= 0 || cols <= 0) throw std::invalid_argument("projected_potential_VA: empty grid");
  if (!(pixel_A > 0) || !std::isfinite(pixel_A)) {
    throw std::invalid_argument("projected_potential_VA: pixel_A must be finite and positive");
  }
  const int pad_px = static_cast<int>(std::ceil(kPotentialPaddingA / pixel_A));
  const int ny = fft_friendly_size(rows + 2 * pad_px);
  const int nx = fft_friendly_size(cols + 2 * pad_px);
  const double height_A = ny * pixel_A;
  const double width_A = nx * pixel_A;
  const double q_cut = kBandLimitFraction / (2 * pixel_A);

  // Only the band |q| < q_cut is ever non-zero, and of it only kx >= 0: the rest follows from
  // v_z being real. Rows are signed ky in [-ky_max, ky_max].
  const int ky_max = std::min(ny / 2 - 1, static_cast<int>(std::floor(q_cut * height_A)));
  const int kx_max = std::min(nx / 2 - 1, static_cast<int>(std::floor(q_cut * width_A)));
  const int band_rows = 2 * ky_max + 1;
  const int band_cols = kx_max + 1;
  std::vector<int> row_kx_end(band_rows);  // one past the last kx inside the band
  for (int r = 0; r < band_rows; ++r) {
    const double qy = (r - ky_max) / height_A;
    const double qx_max = std::sqrt(std::max(0.0, q_cut * q_cut - qy * qy));
    row_kx_end[r] = std::min(band_cols, static_cast<int>(std::floor(qx_max * width_A)) + 1);
  }

  // Positions on the canvas, grouped by element so each f_e is applied once per frequency.
  const double pad_A = pad_px * pixel_A;
  std::map<int, std::vector<Vec2>> fractional_by_Z;
  for (const Atom& atom : atoms) {
    kirkland_parameters(atom.Z);  // unknown elements fail here, before any work
    const double ty = (atom.y_A + pad_A) / height_A;
    const double tx = (atom.x_A + pad_A) / width_A;
    // Outside the canvas an atom would wrap around onto the opposite side of the field.
    if (!(ty >= 0 && ty < 1 && tx >= 0 && tx < 1)) continue;
    fractional_by_Z[atom.Z].push_back({ty, tx});
  }

  const std::size_t band_size = std::size_t(band_rows) * band_cols;
  std::vector<std::complex<double>> spectrum(band_size);
  std::vector<float> structure_re(band_size), structure_im(band_size);
  std::vector<float> phase_x_re(band_cols), phase_x_im(band_cols);
  for (const auto& [Z, positions] : fractional_by_Z) {
    std::fill(structure_re.begin(), structure_re.end(), 0.0f);
    std::fill(structure_im.begin(), structure_im.end(), 0.0f);
    // Structure factor sum_atoms exp(-2 pi i q.r): the phase separates into a row factor and a
    // column factor, so the inner loop is one complex multiply-add per frequency.
    for (const Vec2& t : positions) {
      for (int k = 0; k < band_cols; ++k) {
        const std::complex<double> px = phase(k, t.x);
        phase_x_re[k] = static_cast<float>(px.real());
        phase_x_im[k] = static_cast<float>(px.imag());
      }
      for (int r = 0; r < band_rows; ++r) {
        const std::complex<double> py = phase(r - ky_max, t.y);
        const float py_re = static_cast<float>(py.real());
        const float py_im = static_cast<float>(py.imag());
        float* s_re = structure_re.data() + std::size_t(r) * band_cols;
        float* s_im = structure_im.data() + std::size_t(r) * band_cols;
        const int end = row_kx_end[r];
        for (int k = 0; k < end; ++k) {
          s_re[k] += py_re * phase_x_re[k] - py_im * phase_x_im[k];
          s_im[k] += py_re * phase_x_im[k] + py_im * phase_x_re[k];
        }
      }
    }
    for (int r = 0; r < band_rows; ++r) {
      const double qy = (r - ky_max) / height_A;
      for (int k = 0; k < row_kx_end[r]; ++k) {
        const double q = std::hypot(qy, k / width_A);
        const double weight = electron_scattering_factor_A(Z, q) * band_limit_weight(q, q_cut);
        const std::size_t idx = std::size_t(r) * band_cols + k;
        spectrum[idx] += weight * std::complex<double>(structure_re[idx], structure_im[idx]);
      }
    }
  }

  // On the periodic canvas v(r) = (1 / area) sum_q V(q) exp(2 pi i q.r). The transform below is
  // unitary (1 / sqrt(N)), so the sqrt(N) goes into the scale.
  const double scale =
      kFormFactorToPotentialVA2 / (height_A * width_A) * std::sqrt(static_cast<double>(ny) * nx);
  ComplexImage canvas(ny, nx);
  for (int r = 0; r < band_rows; ++r) {
    const int ky = r - ky_max;
    for (int k = 0; k < row_kx_end[r]; ++k) {
      const std::complex<float> value(scale * spectrum[std::size_t(r) * band_cols + k]);
      canvas((ky + ny) % ny, k) = value;
      if (k > 0) canvas((ny - ky) % ny, nx - k) = std::conj(value);
    }
  }
  inverse_fft_unitary(canvas);

  RealImage potential(rows, cols);
  for (int i = 0; i < rows; ++i) {
    for (int j = 0; j < cols; ++j) potential(i, j) = canvas(i + pad_px, j + pad_px).real();
  }
  return potential;
}

}  // namespace ptypilot::sim
