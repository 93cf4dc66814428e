#include "ptypilot/reconstructor.hpp"

#include <stdexcept>
#include <string>

#include "ptypilot/cpu_reconstructor.hpp"

namespace ptypilot {

Loss parse_loss(std::string_view name) {
  if (name == "intensity") return Loss::kIntensity;
  if (name == "amplitude") return Loss::kAmplitude;
  throw std::invalid_argument("unknown loss '" + std::string(name) +
                              "': use 'intensity' or 'amplitude'");
}

std::unique_ptr<Reconstructor> make_reconstructor(const ReconstructorConfig& config) {
  if (config.backend == "cpu" || config.backend == "auto")
    return std::make_unique<CpuReconstructor>(config);
  if (config.backend == "cuda")
    throw std::runtime_error(
        "reconstructor backend 'cuda' is not available in this build: the CUDA reconstructor "
        "has not been built; use backend 'cpu' or 'auto'");
  throw std::invalid_argument("unknown reconstructor backend '" + config.backend +
                              "': use auto, cpu or cuda");
}

}  // namespace ptypilot
