// Atom columns of a crystal, read from a partial reconstruction: the peaks of the phase where
// the probe has been, and the periodic lattice they sit on, which predicts the columns where
// it has not been yet. Used by the lattice-flank policy (lattice_flank_policy.hpp).
//
// Why a lattice and not the peaks alone: the positions a policy places next lie where the
// reconstruction is still dark, so the columns it needs there are ones nobody has seen. A
// crystal's columns repeat, and a lattice fitted to every peak seen so far places each unseen
// one with the error of the fit, not of one noisy peak. On mos2-paper-detector at the default
// dose the peaks after 100-200 sparse positions are within 0.08-0.1 A of the true columns
// (median), the fitted sites within 0.04-0.07 A (validation seeds 1000-1003).
//
// Coordinates are scan coordinates: Angstrom from the FOV origin (the object point of scan
// position (0, 0)), y down, as Vec2 everywhere in the daemon.
#pragma once

#include <functional>
#include <optional>
#include <span>
#include <vector>

#include "ptypilot/image.hpp"
#include "ptypilot/scan_geometry.hpp"

namespace ptypilot {

struct ColumnPeakOptions {
  // The phase is smoothed first so that one column gives one maximum: about a third of the
  // probe's reach at 33 mrad, 60 kV (0.9 A), less than half the shortest column spacing of
  // common 2D crystals (MoS2 projected: 1.83 A; graphene: 1.42 A).
  double smoothing_sigma_A = 0.25;
  // A peak is the maximum of the square of this side around it: below the shortest spacing.
  double min_separation_A = 1.2;
  // Peaks below this fraction of the 99th percentile of the smoothed phase over the lit pixels
  // are left out: the weakly lit ripple of noise and probe tails.
  double relative_threshold = 0.3;
};

// Local maxima of the smoothed phase at the pixels where `lit` is nonzero (one byte per pixel
// of `phase`, row-major), each refined to a sub-pixel position by a parabola through its
// neighbours on each axis. In scan coordinates, in raster order of their pixels. Empty where
// nothing is lit or the lit phase has no positive contrast.
std::vector<Vec2> find_column_peaks(const RealImage& phase, const ObjectGrid& grid,
                                    std::span<const char> lit, const ColumnPeakOptions& options = {});

struct CrystalLattice {
  Vec2 a1;                  // the shortest lattice vector (A)
  Vec2 a2;                  // the next shortest one not parallel to it
  std::vector<Vec2> basis;  // the sites of one cell, in scan coordinates

  // Every site (basis + i a1 + j a2) in the box [lo, hi], in a fixed order.
  std::vector<Vec2> sites_within(Vec2 lo, Vec2 hi) const;
};

struct LatticeFitOptions {
  // Two peaks are the same site if closer than this; about twice the peaks' error.
  double tolerance_A = 0.25;
  // Lattice vectors are looked for among the differences of peaks within these lengths.
  double min_vector_A = 1.0;
  double max_vector_A = 6.0;
  // A translation counts as a lattice vector if it maps at least this fraction of the peaks
  // whose image is observable onto another peak, relative to the best translation found. A
  // vector between two sublattices (Mo to S2 in MoS2) maps only one sublattice onto the other,
  // about half.
  double min_relative_score = 0.7;
};

// The lattice that `peaks` sit on, or nullopt when they do not show one (too few peaks, no two
// independent translations that repeat, a fit that does not close). `observable(p)` says
// whether a column at p would have been found (lit): a translation that moves peaks out of the
// observed region is not held against them. The fit is least squares over every peak that
// falls on a site, so the sites it predicts average the peaks' noise. Deterministic.
std::optional<CrystalLattice> fit_crystal_lattice(std::span<const Vec2> peaks,
                                                  const std::function<bool(Vec2)>& observable,
                                                  const LatticeFitOptions& options = {});

}  // namespace ptypilot
