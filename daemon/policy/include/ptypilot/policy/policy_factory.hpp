// The one place that turns a PolicyConfig into a Policy: the baselines in this library, or the
// learned policy through the LibTorch plugin (torchscript_policy.hpp says why it is a plugin).
#pragma once

#include <memory>

#include "ptypilot/core/policy.hpp"

namespace ptypilot {

// With placement "density", the policy of that kind is wrapped in a DensityPlacementPolicy
// (density_placement_policy.hpp). Throws std::invalid_argument naming the known kinds or
// placements, or, for "torchscript", when the model is missing or does not match the session
// (naming the file), and std::runtime_error when the LibTorch plugin
// (libptypilot_torch_policy.so, loaded on first use) cannot be loaded.
std::unique_ptr<Policy> make_policy(const PolicyConfig& config, const PolicyLimits& limits);

}  // namespace ptypilot
