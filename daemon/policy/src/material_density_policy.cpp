#include "ptypilot/policy/material_density_policy.hpp"

#include <algorithm>
#include <cmath>
#include <limits>
#include <optional>

#include "phase_at_nodes.hpp"
#include "ptypilot/policy/baseline_policies.hpp"
#include "ptypilot/scan_geometry.hpp"
#include "raster_nodes.hpp"

namespace ptypilot {

using namespace raster_nodes;

namespace {

// The Otsu split of values sorted ascending, the one that maximises the between-class variance
// (the lowest on ties): the lower class's mean and the upper class's first value.
struct TwoClasses {
  double lower_mean, split_value;
};

std::optional<TwoClasses> two_classes(const std::vector<double>& sorted) {
  const std::size_t n = sorted.size();
  if (n < 2) return std::nullopt;
  std::vector<double> prefix(n + 1, 0.0);
  for (std::size_t i = 0; i < n; ++i) prefix[i + 1] = prefix[i] + sorted[i];
  double best = -1.0;
  std::size_t split = 1;
  for (std::size_t i = 1; i < n; ++i) {
    const double w0 = static_cast<double>(i) / static_cast<double>(n);
    const double m0 = prefix[i] / static_cast<double>(i);
    const double m1 = (prefix[n] - prefix[i]) / static_cast<double>(n - i);
    const double between = w0 * (1.0 - w0) * (m0 - m1) * (m0 - m1);
    if (between > best) {
      best = between;
      split = i;
    }
  }
  return TwoClasses{prefix[split] / static_cast<double>(split), sorted[split]};
}

}  // namespace

std::optional<MaterialScale> material_scale_named(std::string_view name) {
  if (name == "brightest") return MaterialScale::kBrightest;
  if (name == "two-class") return MaterialScale::kTwoClass;
  return std::nullopt;
}

MaterialDensityPolicy::MaterialDensityPolicy(MaterialDensityOptions options) : options_(options) {}

void MaterialDensityPolicy::reset(std::uint64_t) {}

std::vector<double> MaterialDensityPolicy::material_weight(const PolicyContext& context) const {
  const ScanRaster& raster = context.raster;
  std::vector<double> weight(node_count(raster), 1.0);
  if (!valid_raster(raster) || !usable_potential(context.potential)) return weight;
  std::vector<double> phase =
      smoothed_phase_at_nodes(raster, *context.potential, options_.smoothing_sigma_A);
  std::vector<double> finite;
  finite.reserve(phase.size());
  for (double v : phase)
    if (std::isfinite(v)) finite.push_back(std::max(v, 0.0));
  if (finite.empty()) return weight;
  const std::size_t k = std::min(finite.size() - 1, static_cast<std::size_t>(std::floor(
                                                        options_.reference_quantile * (finite.size() - 1))));
  std::nth_element(finite.begin(), finite.begin() + static_cast<long>(k), finite.end());
  const double scale = options_.saturation * finite[k];
  // A reconstruction with no contrast yet says nothing about where material is.
  if (!(scale > 1e-6)) return weight;
  const double vacuum = options_.vacuum_weight;
  // m = (phase - zero) / (one - zero), clipped to [0, 1].
  double zero = 0.0, one = scale;
  if (options_.material_scale == MaterialScale::kTwoClass) {
    std::sort(finite.begin(), finite.end());
    const std::optional<TwoClasses> classes = two_classes(finite);
    // No two classes: nothing says where material is.
    if (!classes || !(classes->split_value > classes->lower_mean)) return weight;
    zero = classes->lower_mean;
    one = classes->split_value;
  }
  for (std::size_t i = 0; i < phase.size(); ++i) {
    const double m =
        std::isfinite(phase[i]) ? std::clamp((phase[i] - zero) / (one - zero), 0.0, 1.0) : 0.0;
    weight[i] = vacuum + (1.0 - vacuum) * m;
  }
  return weight;
}

Status MaterialDensityPolicy::propose(const PolicyContext& context, std::vector<Vec2>* positions) {
  positions->clear();
  if (Status s = check_raster(context.raster); !s.ok() || context.count <= 0) return s;
  const ScanRaster& raster = context.raster;
  const std::size_t nodes = node_count(raster);
  if (context.sub_sequence == 0 || context.visited_A.empty())
    return SurveyPolicy().propose(context, positions);
  std::vector<char> taken = visited_mask(raster, context.visited_A);

  const std::vector<double> weight = material_weight(context);
  // Squared distance (A^2) from each node to the nearest visited position, then picked one.
  std::vector<double> d2(nodes, std::numeric_limits<double>::infinity());
  auto lower_to = [&](Vec2 p) {
    for (std::size_t n = 0; n < nodes; ++n) {
      const Vec2 q = node_position(raster, n);
      d2[n] = std::min(d2[n], (q.y - p.y) * (q.y - p.y) + (q.x - p.x) * (q.x - p.x));
    }
  };
  for (const Vec2& v : context.visited_A)
    if (std::isfinite(v.y) && std::isfinite(v.x)) lower_to(v);
  // The field's edge acts as a mirror: a node at distance e from it is 2 e from its own image.
  // Without it the greedy picks crowd the edge, where nothing beyond counts as visited, and
  // leave the interior sparser than a grid (a farthest-point cover's known bias). One step is
  // added so that the edge nodes themselves stay reachable.
  const double height_A = (raster.rows - 1) * raster.step_A;
  const double width_A = (raster.cols - 1) * raster.step_A;
  for (std::size_t n = 0; n < nodes; ++n) {
    const Vec2 q = node_position(raster, n);
    const double edge = std::min({q.y, q.x, height_A - q.y, width_A - q.x});
    const double mirrored = 2 * edge + raster.step_A;
    d2[n] = std::min(d2[n], mirrored * mirrored);
  }

  while (static_cast<int>(positions->size()) < context.count) {
    long best = -1;
    double best_score = -1.0;
    for (std::size_t n = 0; n < nodes; ++n) {
      if (taken[n]) continue;
      const double score = weight[n] * d2[n];
      if (score > best_score) best_score = score, best = static_cast<long>(n);
    }
    if (best < 0) break;  // every node visited
    taken[static_cast<std::size_t>(best)] = 1;
    const Vec2 pick = node_position(raster, static_cast<std::size_t>(best));
    positions->push_back(pick);
    lower_to(pick);
  }
  return Status::Ok();
}

}  // namespace ptypilot
