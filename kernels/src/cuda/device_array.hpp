// Host-side helpers for CUDA code: a growing device array and CUDA errors as Status.
#pragma once

#include <cuda_runtime_api.h>

#include <algorithm>
#include <cstddef>
#include <string>

#include "ptypilot/status.hpp"

namespace ptypilot::gpu {

inline Status cuda_error(cudaError_t e, const char* what) {
  return {StatusCode::kInternal, std::string("CUDA ") + what + ": " + cudaGetErrorString(e)};
}

// A device array that only grows: the reconstructor grows its arrays in add_frames only, so
// that iterations never allocate.
template <typename T>
class DeviceArray {
 public:
  DeviceArray() = default;
  DeviceArray(const DeviceArray&) = delete;
  DeviceArray& operator=(const DeviceArray&) = delete;
  ~DeviceArray() {
    if (data_ != nullptr) cudaFree(data_);
  }

  T* data() const { return data_; }
  std::size_t capacity() const { return capacity_; }

  // At least `count` elements; the first capacity() elements are kept when keep_contents.
  // Grows by at least half again, so that sessions of many small sub-sequences reallocate
  // a logarithmic number of times.
  Status reserve(std::size_t count, bool keep_contents, cudaStream_t stream) {
    if (count <= capacity_) return Status::Ok();
    const std::size_t grown = std::max(count, capacity_ + capacity_ / 2);
    void* raw = nullptr;
    if (cudaError_t e = cudaMalloc(&raw, grown * sizeof(T)); e != cudaSuccess)
      return cuda_error(e, "cudaMalloc");
    T* fresh = static_cast<T*>(raw);
    if (keep_contents && capacity_ > 0) {
      if (cudaError_t e = cudaMemcpyAsync(fresh, data_, capacity_ * sizeof(T),
                                          cudaMemcpyDeviceToDevice, stream);
          e != cudaSuccess) {
        cudaFree(fresh);
        return cuda_error(e, "cudaMemcpyAsync");
      }
      if (cudaError_t e = cudaStreamSynchronize(stream); e != cudaSuccess) {
        cudaFree(fresh);
        return cuda_error(e, "cudaStreamSynchronize");
      }
    }
    if (data_ != nullptr) cudaFree(data_);
    data_ = fresh;
    capacity_ = grown;
    return Status::Ok();
  }

 private:
  T* data_ = nullptr;
  std::size_t capacity_ = 0;
};

}  // namespace ptypilot::gpu
