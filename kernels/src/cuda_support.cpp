// The CUDA build's cuda_support(); cuda_unavailable.cpp is the CPU-only build's.
#include "ptypilot/cuda_support.hpp"

#include <cuda_runtime_api.h>

#include <stdexcept>

namespace ptypilot {
namespace {

CudaSupport probe() {
  CudaSupport s;
  s.built = true;
  int count = 0;
  if (const cudaError_t e = cudaGetDeviceCount(&count); e != cudaSuccess) {
    s.reason = std::string("cudaGetDeviceCount failed: ") + cudaGetErrorString(e);
    return s;
  }
  if (count == 0) {
    s.reason = "cudaGetDeviceCount found no CUDA device";
    return s;
  }
  cudaDeviceProp properties{};
  if (const cudaError_t e = cudaGetDeviceProperties(&properties, 0); e != cudaSuccess) {
    s.reason = std::string("cudaGetDeviceProperties failed: ") + cudaGetErrorString(e);
    return s;
  }
  s.available = true;
  s.device = std::string(properties.name) + " (compute capability " +
             std::to_string(properties.major) + "." + std::to_string(properties.minor) + ")";
  s.reason = "CUDA device 0: " + s.device;
  return s;
}

}  // namespace

const CudaSupport& cuda_support() {
  static const CudaSupport support = probe();
  return support;
}

void require_cuda(const char* who) {
  if (!cuda_support().available) throw std::runtime_error(std::string(who) + ": " + cuda_support().reason);
}

}  // namespace ptypilot
