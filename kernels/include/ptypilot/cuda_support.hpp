// Whether this build has the CUDA code (CudaReconstructor, the Jump Flooding reward) and this
// machine a device to run it. Both the CPU-only build and the CUDA build define these.
#pragma once

#include <string>

namespace ptypilot {

struct CudaSupport {
  bool built = false;      // compiled with nvcc
  bool available = false;  // built, and the runtime found a device
  std::string reason;      // why not (cudaGetDeviceCount's error string, say), or the device used
  std::string device;      // where available: device 0's name and compute capability
};

// Probed once per process, on first use; device 0 is the one used.
const CudaSupport& cuda_support();

// Throws std::runtime_error("<who>: <reason>") unless cuda_support().available.
void require_cuda(const char* who);

}  // namespace ptypilot
