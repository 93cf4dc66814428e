// A training-free adaptive policy for specimens that do not fill the field: survey first, then
// spend the rest of the budget where the reconstruction shows material.
//
// Published gains of adaptive scanning come where the information is sparse in space (vacuum,
// holes, isolated particles). A fixed pattern spends the same dose per area on vacuum as on
// material; this policy spends it in proportion to a material weight:
//
//   survey (sub-sequence 0, or any call with nothing visited): SurveyPolicy
//     (baseline_policies.hpp), sparse_grid_positions(count, ...) over the whole FOV: `count`
//     positions spread evenly, so that every region has been seen once before the
//     reconstruction is asked about it.
//     The survey is part of the budget; its dose counts against the policy.
//   then, per call, `count` picks, greedily one at a time among the unvisited raster nodes:
//     score(r) = w(r) * d(r)^2
//       d(r): distance from r to the nearest visited or already picked position (A), and at
//             most 2 e + step, e its distance to the FOV's edge (the edge as a mirror);
//       w(r) = vacuum_weight + (1 - vacuum_weight) * m(r),
//       m(r): the reconstructed phase, Gaussian-smoothed (smoothing_sigma_A) at the node,
//             clipped below at 0, divided by `saturation` times its `reference_quantile` over
//             the nodes, and clipped at 1: 1 on material, 0 on vacuum (the positivity prior
//             keeps vacuum at 0; reconstructor.hpp). Saturating, because the question is
//             where material is, not where its brightest columns are: on a specimen that
//             fills the field, a weight that followed the columns bunched the positions.
//     With material_scale = kTwoClass, m(r) is instead 0 at the mean of the lower class of a
//     two-class (Otsu) split of the smoothed phase over the nodes and 1 at the split: the
//     scale comes from where the reconstruction's vacuum noise sits, not from the brightest
//     material. Where that noise is a large share of the material's phase (a weak specimen,
//     or vacuum without the dark-smoothing prior), the quantile rule gives vacuum much of the
//     material's weight; README "Where adaptive scanning wins" has the measurements. It is
//     for specimens with vacuum: on one that fills the field it splits the material itself,
//     and the positions bunch where its phase is higher.
//     Equal scores mean d ~ w^(-1/2): material gets positions 1 / sqrt(vacuum_weight) times
//     closer than vacuum (about 4.5x at 0.05, i.e. 20x the density), and on a specimen that
//     fills the field (w about uniform) the picks are a blue-noise cover, about as even as a
//     jittered grid. Ties go to the lower raster index; the policy is deterministic.
//
// Cost: O(nodes x visited) once per call for d, then O(nodes) per pick (10,000 nodes x 50
// picks on mos2-paper).
#pragma once

#include <cstdint>
#include <optional>
#include <string_view>
#include <vector>

#include "ptypilot/core/policy.hpp"

namespace ptypilot {

// How m(r) is scaled (the header comment): by the brightest material, or by a two-class split.
enum class MaterialScale { kBrightest, kTwoClass };

// "brightest" or "two-class" (the config's policy.material_scale); nullopt for anything else.
std::optional<MaterialScale> material_scale_named(std::string_view name);

struct MaterialDensityOptions {
  // About a probe's reach plus a bond: a node next to material counts as material, so that the
  // material's edge, which the probe sees from both sides, is sampled too.
  double smoothing_sigma_A = 1.0;
  // Relative weight of vacuum. Not 0: a region the survey missed or read as empty still gets
  // a position when it is far enough from every other one.
  double vacuum_weight = 0.05;
  // The material scale is this quantile of the smoothed phase over the nodes, so that a few
  // bright columns do not make the rest of the material look like vacuum.
  double reference_quantile = 0.95;
  // Material at this fraction of the reference phase already has full weight.
  double saturation = 0.5;
  MaterialScale material_scale = MaterialScale::kBrightest;
};

class MaterialDensityPolicy final : public Policy {
 public:
  explicit MaterialDensityPolicy(MaterialDensityOptions options = {});
  void reset(std::uint64_t seed) override;
  Status propose(const PolicyContext& context, std::vector<Vec2>* positions) override;
  std::string_view name() const override { return "material-density"; }

  // w(r) at every raster node (raster order), as propose() weighs them; all 1 without a usable
  // potential. For tests and for showing the operator where the policy sees material.
  std::vector<double> material_weight(const PolicyContext& context) const;

 private:
  MaterialDensityOptions options_;
};

}  // namespace ptypilot
