// Specimens for the simulated detector: atom models of monolayer MoS2, graphene and a
// double-walled carbon nanotube (the paper's two test cases plus a light reference), specimens
// with vacuum in the field (a MoS2 flake, MoS2 with holes, Au particles on a thin carbon film:
// where adaptive scanning has something to skip), and their
// projected potentials from Kirkland's parameterisation of the electron scattering factors
// (E. J. Kirkland, "Advanced Computing in Electron Microscopy", 2nd ed., Springer 2010, App. C).
//
// Coordinates are (y, x) in Angstrom, y along image rows; the beam runs along z, so every atom
// model here is already a projection.
#pragma once

#include <array>
#include <cstdint>
#include <span>
#include <string_view>
#include <vector>

#include "ptypilot/image.hpp"

namespace ptypilot::sim {

struct Atom {
  double y_A;
  double x_A;
  int Z;
};

// The vacuum-rich kinds are sized on the scan FOV (SpecimenConfig::fov_*), so that each covers
// the stated fraction of what is scanned whatever the margin around it:
//   kMoS2Flake: one MoS2 flake with a wavy outline, at a random angle and near the FOV centre,
//     40 % of the FOV (kFlakeMaterialFraction), vacuum around it;
//   kMoS2Holes: MoS2 with 3 to 5 holes of wavy outline centred in the FOV, 40 % of the FOV vacuum
//     (kHolesVacuumFraction);
//   kNanoparticles: 2 or 3 Au clusters (fcc, [001] down the beam, random angle and lattice
//     offset), discs wholly inside the FOV covering 24 % of it together
//     (kParticleMaterialFraction), on an amorphous carbon film over the whole field.
// SpecimenConfig::material_fraction sets another share of material for these three kinds.
// Outlines are drawn in the continuous lattice: an atom is kept where its site lies inside.
//   kMoS2GrainBoundary: two MoS2 grains turned 12 to 30 degrees against each other, meeting on a
//     gently curved line near the FOV centre; all material, the boundary the unique part.
enum class SpecimenKind {
  kMoS2,
  kGraphene,
  kDwcnt,
  kMoS2Flake,
  kMoS2Holes,
  kNanoparticles,
  kMoS2GrainBoundary
};

// "mos2" | "graphene" | "dwcnt" | "mos2-flake" | "mos2-holes" | "nanoparticles" |
// "mos2-grain-boundary"; throws
// std::invalid_argument listing the valid names.
SpecimenKind parse_specimen_kind(std::string_view name);
const char* to_string(SpecimenKind kind);

struct SpecimenConfig {
  SpecimenKind kind = SpecimenKind::kMoS2;
  std::uint64_t seed = 0;
  int vacancies = 3;               // atoms removed at random (seeded), chosen inside the field
  bool random_rotation = true;     // in-plane rotation, uniform in [0, 360) deg
  bool random_translation = true;  // lattice shift within one unit cell / tube centre in the field
  // The scan FOV on the field, which the vacuum-rich kinds are sized and placed on; a zero size
  // means the whole field. simulate_specimen passes its object grid's FOV.
  Vec2 fov_origin_A;
  double fov_height_A = 0.0;
  double fov_width_A = 0.0;
  // The share of the FOV that is material, for the kinds that fix one (flake, holes,
  // nanoparticles; the carbon film under the particles does not count); 0: the kind's own
  // (kFlakeMaterialFraction, 1 - kHolesVacuumFraction, kParticleMaterialFraction). Anything
  // else must lie in (0, 1), and is refused for the other kinds, whose share the lattice or the
  // tube decides.
  double material_fraction = 0.0;
};

inline constexpr double kFlakeMaterialFraction = 0.40;
inline constexpr double kHolesVacuumFraction = 0.40;
inline constexpr double kParticleMaterialFraction = 0.24;
inline constexpr double kGoldLatticeA = 4.078;
// Amorphous carbon film under the particles: random C with no two closer than kSupportSpacingA,
// at about a quarter of graphene's 0.38 atoms / A^2 (a film thinner than one graphene layer's
// worth, so that it stays weak beside the Au).
inline constexpr double kSupportDensityPerA2 = 0.10;
inline constexpr double kSupportSpacingA = 1.4;

// Atoms are generated this far beyond the field on every side, so that the potential inside the
// field sees all its neighbours (Kirkland potentials fall below 1e-3 of their peak within ~4 A).
inline constexpr double kSpecimenMarginA = 5.0;

// Lattice constants used by build_specimen.
inline constexpr double kMoS2LatticeA = 3.16;
inline constexpr double kGrapheneLatticeA = 2.46;  // C-C bond 2.46 / sqrt(3) = 1.420 A
// Chiralities of the paper's DWCNT (diameters 9.78 A and 16.4 A).
inline constexpr std::array<int, 2> kDwcntInnerChirality = {10, 4};
inline constexpr std::array<int, 2> kDwcntOuterChirality = {18, 5};

// The share of the FOV that is material by design for config's kind: its material_fraction, or
// the kind's own where that is 0; 1 for mos2, graphene and the grain boundary; 0 for the nanotube,
// whose share depends on where its axis falls. Throws std::invalid_argument for a
// material_fraction outside (0, 1), or given for a kind that does not take one.
double design_material_fraction(const SpecimenConfig& config);

// Atoms covering [0, height_A] x [0, width_A] plus kSpecimenMarginA on every side.
// Deterministic for a given config: the seed drives a std::mt19937_64 whose raw output is mapped
// to uniforms here, so the result does not depend on the standard library's distributions.
// Without random rotation the lattice vector a1 (or the tube axis) runs along x; without random
// translation a lattice site (or the tube axis) passes through the centre of the field.
// Throws std::invalid_argument for a non-positive field, a FOV that leaves it, more vacancies
// than atoms in it, a material_fraction design_material_fraction refuses, or a FOV too small to
// hold the particles apart.
std::vector<Atom> build_specimen(const SpecimenConfig& config, double height_A, double width_A);

// Where the specimen of `config` has material: 1, else 0, on a rows x cols grid whose pixel (i, j)
// is the point (i, j) * pixel_A, for the field [0, rows * pixel_A] x [0, cols * pixel_A] (what
// simulate_specimen builds). Material is the whole field for mos2 and graphene; for dwcnt the
// band within the outer tube's radius of the axis; the inside of the flake outline; everything
// outside the holes; the particles' discs (the carbon film under them does not count). Taken
// from the same draws as build_specimen, so atoms of the flake, sheet and particles lie where
// the mask is 1. Throws as build_specimen does for a bad field.
RealImage material_mask(const SpecimenConfig& config, int rows, int cols, double pixel_A);

// Radius |C| / (2 pi) of a carbon nanotube of chirality (n, m), |C| = a sqrt(n^2 + n m + m^2).
double nanotube_radius_A(int n, int m);

// Projection along z of one (n, m) nanotube rolled from graphene. Its axis passes through
// center_A in the direction axis_angle_rad (0: along +x, pi/2: along +y); spin_rad turns the tube
// about its own axis. Covers axial positions in [-half_length_A, half_length_A). All atoms are
// returned, with no cropping to a field.
std::vector<Atom> project_nanotube(int n, int m, Vec2 center_A, double axis_angle_rad,
                                   double spin_rad, double half_length_A);

// Kirkland's 12-parameter fit, f_e(q) = sum_i a_i / (q^2 + b_i) + sum_i c_i exp(-d_i q^2),
// with q in 1/A (no 2 pi) and f_e in A.
struct KirklandParameters {
  std::array<double, 3> a;  // A^-1
  std::array<double, 3> b;  // A^-2
  std::array<double, 3> c;  // A
  std::array<double, 3> d;  // A^2
};

// Parameters for Z in {1, 6, 7, 8, 16, 42, 79}; throws std::invalid_argument for any other Z.
const KirklandParameters& kirkland_parameters(int Z);

// Electron scattering factor f_e(q) in Angstrom, q in 1/Angstrom (no 2 pi).
double electron_scattering_factor_A(int Z, double q_per_A);

// Kirkland's analytic real-space projected potential of one atom at distance r_A > 0, in V*A.
// Throws std::invalid_argument for r_A <= 0, where it diverges.
double atom_projected_potential_VA(int Z, double r_A);

// Projected potential v_z in V*A on a rows x cols grid whose pixel (i, j) is the point
// (y, x) = (i * pixel_A, j * pixel_A). Computed in Fourier space on a periodic canvas padded by
// at least kPotentialPaddingA on every side (so wrap-around stays out of the field), then
// cropped. Band limit: f_e(q) is multiplied by a smooth (C-infinity) step that is 1 for
// |q| <= 0.6 q_cut and 0 for |q| >= q_cut, with q_cut = 2/3 of the Nyquist frequency
// = 1 / (3 pixel_A). Atoms outside the padded canvas are ignored. Cost: atoms x band pixels
// plus one FFT of the canvas. Throws std::invalid_argument for a bad grid or an unknown Z.
inline constexpr double kPotentialPaddingA = 5.0;
RealImage projected_potential_VA(std::span<const Atom> atoms, int rows, int cols, double pixel_A);

}  // namespace ptypilot::sim
