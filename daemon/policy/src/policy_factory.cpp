#include <dlfcn.h>

#include <cstdlib>
#include <filesystem>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <string>
#include <system_error>
#include <vector>

#include "ptypilot/policy/policy_factory.hpp"
#include "ptypilot/policy/baseline_policies.hpp"
#include "ptypilot/policy/density_placement_policy.hpp"
#include "ptypilot/policy/fixed_pattern_policies.hpp"
#include "ptypilot/wire/log.hpp"
#include "ptypilot/core/policy.hpp"
#include "ptypilot/policy/lattice_flank_policy.hpp"
#include "ptypilot/policy/material_density_policy.hpp"
#include "ptypilot/policy/torchscript_policy.hpp"

namespace ptypilot {
namespace {

std::unique_ptr<Policy> make_baseline(const PolicyConfig& config) {
  // model_path is ignored by the baselines on purpose: switching `kind` to compare a baseline
  // against the learned policy should not require deleting the path from the config.
  if (config.kind == "raster") return std::make_unique<RasterPolicy>();
  if (config.kind == "sparse-grid") return std::make_unique<SparseGridPolicy>();
  if (config.kind == "random") return std::make_unique<RandomPolicy>();
  if (config.kind == "heuristic") return std::make_unique<HeuristicPolicy>();
  if (config.kind == "material-density") {
    MaterialDensityOptions options;
    const auto scale = material_scale_named(config.material_scale);
    if (!scale)
      throw std::invalid_argument("unknown material_scale \"" + config.material_scale + "\"");
    options.material_scale = *scale;
    return std::make_unique<MaterialDensityPolicy>(options);
  }
  if (config.kind == "lattice-flank") return std::make_unique<LatticeFlankPolicy>();
  if (const auto pattern = fixed_pattern_named(config.kind))
    return std::make_unique<FixedPatternPolicy>(*pattern);
  if (config.kind == "torchscript") return nullptr;
  throw std::invalid_argument("unknown policy kind \"" + config.kind +
                              "\"; known kinds: raster, sparse-grid, jittered-grid, "
                              "fermat-spiral, sobol, random, heuristic, material-density, "
                              "lattice-flank, torchscript");
}

// Where the TorchScript policy plugin may be, in the order tried: $PTYPILOT_TORCH_POLICY_LIB,
// then lib/ beside the program's bin/ (build/lib in the build tree, <prefix>/lib installed).
std::vector<std::string> torch_plugin_candidates() {
  std::vector<std::string> paths;
  if (const char* env = std::getenv(kTorchPolicyLibraryEnv); env != nullptr && *env != '\0')
    paths.emplace_back(env);
  std::error_code ec;
  const std::filesystem::path exe = std::filesystem::read_symlink("/proc/self/exe", ec);
  if (!ec)
    paths.push_back((exe.parent_path() / ".." / "lib" / kTorchPolicyLibraryName)
                        .lexically_normal()
                        .string());
  return paths;
}

// The plugin's factory, loaded the first time a "torchscript" policy is made and kept for the
// life of the process: the plugin is never unloaded, since the policies it made (their vtables)
// and LibTorch's own state live in it. RTLD_NOW, so that an undefined symbol (a program built
// without ENABLE_EXPORTS, a stale plugin) fails here with dlerror()'s name for it, not later in
// a call; RTLD_LOCAL, so that LibTorch's symbols stay out of the program's namespace. A failed
// load is not remembered: the next make_policy() tries again (say, after the plugin was built).
MakeTorchScriptPolicyFn torch_policy_factory() {
  static std::mutex mutex;
  static MakeTorchScriptPolicyFn factory = nullptr;
  std::lock_guard lock(mutex);
  if (factory != nullptr) return factory;

  const std::vector<std::string> candidates = torch_plugin_candidates();
  std::vector<std::string> failures;  // "path: why", for each candidate tried
  auto failed = [&](const std::string& path, const char* why) {
    std::string reason = why != nullptr ? why : "unknown error";
    if (reason.starts_with(path + ": ")) reason.erase(0, path.size() + 2);  // dlerror names it
    failures.push_back(path + ": " + reason);
  };
  for (const std::string& path : candidates) {
    void* handle = ::dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
    if (handle == nullptr) {
      failed(path, ::dlerror());
      continue;
    }
    ::dlerror();
    void* symbol = ::dlsym(handle, kMakeTorchScriptPolicySymbol);
    if (symbol == nullptr) {
      failed(path, ::dlerror());
      ::dlclose(handle);
      continue;
    }
    if (!failures.empty())
      log::warn("torchscript_plugin_fallback", {{"loaded", path}, {"failed", failures}});
    log::info("torchscript_plugin_loaded", {{"path", path}});
    factory = reinterpret_cast<MakeTorchScriptPolicyFn>(symbol);
    return factory;
  }
  std::string tried;
  for (const std::string& f : failures) tried += "\n  " + f;
  if (candidates.empty())
    tried = "\n  nothing: $" + std::string(kTorchPolicyLibraryEnv) +
            " is unset and /proc/self/exe is unreadable";
  throw std::runtime_error(
      std::string("policy kind \"torchscript\" needs the LibTorch policy plugin ") +
      kTorchPolicyLibraryName + ", which could not be loaded; tried:" + tried +
      "\n(build the target ptypilot_torch_policy, or set " + kTorchPolicyLibraryEnv +
      " to its path)");
}

}  // namespace

namespace {

std::unique_ptr<Policy> make_proposing_policy(const PolicyConfig& config, const PolicyLimits& limits) {
  if (auto policy = make_baseline(config)) return policy;
  if (config.model_path.empty())
    throw std::invalid_argument(
        "policy kind \"torchscript\" needs policy.model_path: the file that "
        "`python3 -m ptypilot.export` wrote");
  // Throws std::invalid_argument for a bad model file, as documented in torchscript_policy.hpp.
  return std::unique_ptr<Policy>(torch_policy_factory()(config.model_path.c_str(), &limits));
}

}  // namespace

std::unique_ptr<Policy> make_policy(const PolicyConfig& config, const PolicyLimits& limits) {
  if (config.placement != "direct" && config.placement != "density")
    throw std::invalid_argument("unknown placement \"" + config.placement +
                                "\"; known placements: direct, density");
  std::unique_ptr<Policy> policy = make_proposing_policy(config, limits);
  if (config.placement == "density")
    return std::make_unique<DensityPlacementPolicy>(std::move(policy));
  return policy;
}

}  // namespace ptypilot
