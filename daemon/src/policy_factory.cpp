#include <memory>
#include <stdexcept>
#include <string>

#include "ptypilot/daemon/baseline_policies.hpp"
#include "ptypilot/daemon/policy.hpp"
#include "ptypilot/daemon/torchscript_policy.hpp"

namespace ptypilot {
namespace {

std::unique_ptr<Policy> make_baseline(const PolicyConfig& config) {
  // model_path is ignored by the baselines on purpose: switching `kind` to compare a baseline
  // against the learned policy should not require deleting the path from the config.
  if (config.kind == "raster") return std::make_unique<RasterPolicy>();
  if (config.kind == "sparse-grid") return std::make_unique<SparseGridPolicy>();
  if (config.kind == "random") return std::make_unique<RandomPolicy>();
  if (config.kind == "heuristic") return std::make_unique<HeuristicPolicy>();
  if (config.kind == "torchscript") return nullptr;
  throw std::invalid_argument("unknown policy kind \"" + config.kind +
                              "\"; known kinds: raster, sparse-grid, random, heuristic, "
                              "torchscript");
}

}  // namespace

std::unique_ptr<Policy> make_policy(const PolicyConfig& config, const PolicyLimits& limits) {
  if (auto policy = make_baseline(config)) return policy;
  if (config.model_path.empty())
    throw std::invalid_argument(
        "policy kind \"torchscript\" needs policy.model_path: the file that "
        "`python3 -m ptypilot.export` wrote");
  return std::make_unique<TorchScriptPolicy>(config.model_path, limits);
}

}  // namespace ptypilot
