#include "ptypilot/policy/material_density_policy.hpp"

#include <algorithm>
#include <cmath>
#include <optional>

#include "phase_at_nodes.hpp"
#include "ptypilot/policy/baseline_policies.hpp"
#include "ptypilot/scan_geometry.hpp"
#include "raster_nodes.hpp"
#include "weighted_spacing.hpp"

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
  if (context.sub_sequence == 0 || context.visited_A.empty())
    return SurveyPolicy().propose(context, positions);
  *positions = weighted_spacing_picks(context.raster, context.visited_A, material_weight(context),
                                      context.count);
  return Status::Ok();
}

}  // namespace ptypilot
