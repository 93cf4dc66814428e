#include "ptypilot/fft.hpp"

#include <fftw3.h>

#include <cmath>
#include <cstring>
#include <map>
#include <mutex>
#include <new>
#include <stdexcept>
#include <tuple>

namespace ptypilot {
namespace {

struct PlanKey {
  int rows, cols, batch, sign;
  bool in_place = true;
  auto operator<=>(const PlanKey&) const = default;
};

std::mutex& planner_mutex() {
  static std::mutex m;
  return m;
}

// Plans live until the process exits; there are only a handful of shapes per process.
fftwf_plan cached_plan(const PlanKey& key) {
  static std::map<PlanKey, fftwf_plan> plans;
  std::lock_guard lock(planner_mutex());
  if (auto it = plans.find(key); it != plans.end()) return it->second;
  const std::size_t count = std::size_t(key.rows) * key.cols * key.batch;
  AlignedComplexBuffer scratch(count);  // the plan's alignment is that of these arrays
  AlignedComplexBuffer scratch_out(key.in_place ? 0 : count);
  int dims[2] = {key.rows, key.cols};
  auto* in = reinterpret_cast<fftwf_complex*>(scratch.data());
  auto* out = key.in_place ? in : reinterpret_cast<fftwf_complex*>(scratch_out.data());
  // FFTW_ESTIMATE (fft.hpp says why), never timing-based planning.
  const unsigned flags = FFTW_ESTIMATE | (key.in_place ? 0u : unsigned(FFTW_PRESERVE_INPUT));
  fftwf_plan plan = fftwf_plan_many_dft(2, dims, key.batch, in, nullptr, 1, key.rows * key.cols,
                                        out, nullptr, 1, key.rows * key.cols, key.sign, flags);
  if (plan == nullptr) throw std::runtime_error("FFTW could not make a plan");
  plans.emplace(key, plan);
  return plan;
}

void unitary_fft(ComplexImage& image, int sign) {
  if (image.empty()) return;
  fftwf_plan plan = cached_plan({image.rows(), image.cols(), 1, sign});
  AlignedComplexBuffer buffer(image.size());
  std::memcpy(buffer.data(), image.data(), image.size() * sizeof(std::complex<float>));
  fftwf_execute_dft(plan, reinterpret_cast<fftwf_complex*>(buffer.data()),
                    reinterpret_cast<fftwf_complex*>(buffer.data()));
  const float scale = 1.0f / std::sqrt(static_cast<float>(image.size()));
  for (std::size_t i = 0; i < image.size(); ++i) image.data()[i] = buffer.data()[i] * scale;
}

}  // namespace

void FftwFree::operator()(void* p) const { fftwf_free(p); }

AlignedComplexBuffer::AlignedComplexBuffer(std::size_t count) : size_(count) {
  if (count == 0) return;
  void* p = fftwf_malloc(count * sizeof(std::complex<float>));
  if (p == nullptr) throw std::bad_alloc();
  data_.reset(static_cast<std::complex<float>*>(p));
  std::memset(p, 0, count * sizeof(std::complex<float>));
}

BatchedFft::BatchedFft(int n, int batch, FftDirection direction, FftPlacement placement)
    : n_(n), batch_(batch) {
  if (n <= 0 || batch <= 0) throw std::invalid_argument("BatchedFft: empty shape");
  plan_ = cached_plan({n, n, batch, direction == FftDirection::kForward ? FFTW_FORWARD : FFTW_BACKWARD,
                       placement == FftPlacement::kInPlace});
}

void BatchedFft::execute(const std::complex<float>* in, std::complex<float>* out) const {
  // FFTW takes a non-const input pointer; the plan was made with FFTW_PRESERVE_INPUT.
  auto* i = reinterpret_cast<fftwf_complex*>(const_cast<std::complex<float>*>(in));
  fftwf_execute_dft(static_cast<fftwf_plan>(plan_), i, reinterpret_cast<fftwf_complex*>(out));
}

void BatchedFft::execute(std::complex<float>* data) const {
  auto* d = reinterpret_cast<fftwf_complex*>(data);
  fftwf_execute_dft(static_cast<fftwf_plan>(plan_), d, d);
}

void forward_fft_unitary(ComplexImage& image) { unitary_fft(image, FFTW_FORWARD); }
void inverse_fft_unitary(ComplexImage& image) { unitary_fft(image, FFTW_BACKWARD); }

}  // namespace ptypilot
