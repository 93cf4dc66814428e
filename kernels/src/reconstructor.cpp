#include "ptypilot/reconstructor.hpp"
#include "ptypilot/scan_rotation.hpp"

#include <stdexcept>
#include <string>

#include "ptypilot/cpu_reconstructor.hpp"
#include "ptypilot/cuda_support.hpp"
#if PTYPILOT_WITH_CUDA
#include "ptypilot/cuda_reconstructor.hpp"
#endif

namespace ptypilot {

BackendChoice choose_backend(std::string_view requested) {
  if (requested == "cpu") return {"cpu", "requested"};
  const CudaSupport& cuda = cuda_support();
  if (requested == "cuda") {
    if (!cuda.available)
      throw std::runtime_error("reconstructor backend 'cuda' is not available: " + cuda.reason +
                               "; use backend 'cpu' or 'auto'");
    return {"cuda", "requested; " + cuda.reason};
  }
  if (requested == "auto") {
    if (cuda.available) return {"cuda", "auto: " + cuda.reason};
    return {"cpu", "auto: " + cuda.reason};
  }
  throw std::invalid_argument("unknown reconstructor backend '" + std::string(requested) +
                              "': use auto, cpu or cuda");
}

std::unique_ptr<Reconstructor> make_reconstructor(const ReconstructorConfig& config) {
  if (config.scan_rotation_deg != 0.0) {
    ScanRotation rotation(config.scan_rotation_deg, config.object, config.probe.window_px);
    ReconstructorConfig inner = config;
    inner.scan_rotation_deg = 0.0;
    inner.object = rotation.detector_grid();
    return std::make_unique<RotatedReconstructor>(std::move(rotation), make_reconstructor(inner));
  }
  const BackendChoice choice = choose_backend(config.backend);
#if PTYPILOT_WITH_CUDA
  if (choice.backend == "cuda") return std::make_unique<CudaReconstructor>(config);
#endif
  return std::make_unique<CpuReconstructor>(config);
}

}  // namespace ptypilot
