#include "ptypilot/reconstruct_timing.hpp"

#include <omp.h>

#include <algorithm>
#include <chrono>
#include <vector>

#include "ptypilot/cpu_reconstructor.hpp"
#include "ptypilot/fft.hpp"
#if PTYPILOT_WITH_CUDA
#include "ptypilot/cuda_reconstructor.hpp"
#endif

namespace ptypilot {
namespace {

using Clock = std::chrono::steady_clock;

double median(std::vector<double> v) {
  if (v.empty()) return 0.0;
  std::sort(v.begin(), v.end());
  const std::size_t m = v.size() / 2;
  return v.size() % 2 ? v[m] : 0.5 * (v[m - 1] + v[m]);
}

}  // namespace

double IterationTiming::median_iteration_ms() const { return median(iteration_ms); }
double IterationTiming::median_floor_ms() const { return median(floor_ms); }
double IterationTiming::min_iteration_ms() const {
  return iteration_ms.empty() ? 0.0 : *std::min_element(iteration_ms.begin(), iteration_ms.end());
}

double cpu_fft_round_trip_ms(int n, long patterns, int batch, int threads) {
  const BatchedFft forward(n, batch, FftDirection::kForward);
  const BatchedFft backward(n, batch, FftDirection::kBackward);
  const BatchedFft forward_single(n, 1, FftDirection::kForward);
  const BatchedFft backward_single(n, 1, FftDirection::kBackward);
  const std::size_t nn = std::size_t(n) * n;
  const long batches = (patterns + batch - 1) / batch;
  // Each thread's buffer is made (allocated, zeroed, its pages faulted in) before the clock
  // starts: the floor is the transforms' time, as the iterations' buffers exist already.
  std::vector<AlignedComplexBuffer> buffers;
  for (int t = 0; t < threads; ++t) buffers.emplace_back(nn * batch);
  const auto t0 = Clock::now();
#pragma omp parallel num_threads(threads)
  {
    AlignedComplexBuffer& buffer = buffers[static_cast<std::size_t>(omp_get_thread_num())];
#pragma omp for schedule(dynamic, 1)
    for (long b = 0; b < batches; ++b) {
      const long in_batch = std::min<long>(batch, patterns - b * batch);
      if (in_batch == batch) {
        forward.execute(buffer.data());
        backward.execute(buffer.data());
      } else {
        for (long q = 0; q < in_batch; ++q) forward_single.execute(buffer.data() + q * nn);
        for (long q = 0; q < in_batch; ++q) backward_single.execute(buffer.data() + q * nn);
      }
    }
  }
  return std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
}

Status time_iterations(Reconstructor& reconstructor, const ReconstructorConfig& config, int warmup,
                       int iterations, IterationTiming* out) {
  const long patterns = static_cast<long>(reconstructor.snapshot().frames);
  if (patterns == 0) return failed_precondition("no frames to time iterations on");
  auto floor = [&](double* ms) -> Status {
#if PTYPILOT_WITH_CUDA
    if (auto* cuda = dynamic_cast<CudaReconstructor*>(&reconstructor))
      return cuda->time_fft_round_trip(ms);
#endif
    if (auto* cpu = dynamic_cast<CpuReconstructor*>(&reconstructor)) {
      *ms = cpu_fft_round_trip_ms(config.probe.window_px, patterns, config.batch, cpu->threads());
      return Status::Ok();
    }
    return {StatusCode::kUnavailable, "no FFT floor for backend " + std::string(reconstructor.backend())};
  };
  if (Status s = reconstructor.iterate(warmup); !s.ok()) return s;
  double unused = 0;
  if (Status s = floor(&unused); !s.ok()) return s;  // plans and caches warm too
  *out = {};
  for (int i = 0; i < iterations; ++i) {
    const auto t0 = Clock::now();
    if (Status s = reconstructor.iterate(1); !s.ok()) return s;
    out->iteration_ms.push_back(std::chrono::duration<double, std::milli>(Clock::now() - t0).count());
    double ms = 0;
    if (Status s = floor(&ms); !s.ok()) return s;
    out->floor_ms.push_back(ms);
  }
  return Status::Ok();
}

}  // namespace ptypilot
