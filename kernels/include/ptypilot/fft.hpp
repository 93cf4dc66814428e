// FFTW (single precision) plans and aligned buffers.
//
// Plans are made once per shape and kept for the life of the process: FFTW's planner is slow
// and not thread-safe, while executing a plan on new arrays (fftwf_execute_dft) is both fast and
// thread-safe. Buffers come from fftwf_malloc so every buffer has the alignment a plan assumes.
#pragma once

#include <complex>
#include <cstddef>
#include <memory>

#include "ptypilot/image.hpp"

namespace ptypilot {

struct FftwFree {
  void operator()(void* p) const;
};

// A 64-byte aligned array of complex<float>, sized once.
class AlignedComplexBuffer {
 public:
  AlignedComplexBuffer() = default;
  explicit AlignedComplexBuffer(std::size_t count);
  std::complex<float>* data() { return data_.get(); }
  const std::complex<float>* data() const { return data_.get(); }
  std::size_t size() const { return size_; }

 private:
  std::unique_ptr<std::complex<float>, FftwFree> data_;
  std::size_t size_ = 0;
};

enum class FftDirection { kForward, kBackward };

enum class FftPlacement { kInPlace, kOutOfPlace };

// Unnormalised 2-D FFTs of `batch` contiguous n x n arrays. Out-of-place transforms leave their
// input intact.
class BatchedFft {
 public:
  // Plans with FFTW_ESTIMATE: FFTW_MEASURE picks among algorithms by timing them, so two
  // processes (or one under load) could transform the same array differently and round
  // differently, and the reconstructions that scores compare would differ between runs.
  BatchedFft(int n, int batch, FftDirection direction,
             FftPlacement placement = FftPlacement::kInPlace);
  // Arrays must come from an AlignedComplexBuffer (or fftwf_malloc) and hold batch * n * n
  // values; execute(data) is for in-place plans, execute(in, out) for out-of-place ones.
  void execute(std::complex<float>* data) const;
  void execute(const std::complex<float>* in, std::complex<float>* out) const;
  int n() const { return n_; }
  int batch() const { return batch_; }

 private:
  int n_;
  int batch_;
  void* plan_;  // fftwf_plan, owned by the process-wide plan cache
};

// Unitary (1/N-scaled) 2-D transforms of one image, for set-up work off the hot path.
void forward_fft_unitary(ComplexImage& image);
void inverse_fft_unitary(ComplexImage& image);

}  // namespace ptypilot
