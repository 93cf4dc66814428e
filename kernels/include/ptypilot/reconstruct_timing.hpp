// Reconstructor iterations timed against the floor set by their FFTs, for the benchmarks
// (`ptypilot bench reconstruct` and kernels/bench): one implementation of that measurement.
#pragma once

#include <vector>

#include "ptypilot/reconstructor.hpp"

namespace ptypilot {

struct IterationTiming {
  std::vector<double> iteration_ms;  // each iterate(1), host wall-clock, to completion
  std::vector<double> floor_ms;      // the FFT floor, measured right after each iteration
  double median_iteration_ms() const;
  double min_iteration_ms() const;
  double median_floor_ms() const;
};

// Runs `warmup` iterations, then `iterations` times iterate(1) followed by the backend's floor:
// one batched forward plus one inverse FFT of every stored pattern. For CpuReconstructor that
// is FFTW with its threads and batch size; for CudaReconstructor cuFFT on its own plan and
// stream (CudaReconstructor::time_fft_round_trip). Interleaved, so that both see the same
// machine state. The reconstructor must hold frames.
Status time_iterations(Reconstructor& reconstructor, const ReconstructorConfig& config, int warmup,
                       int iterations, IterationTiming* out);

// The CPU floor alone: one forward plus one inverse batched FFTW transform of `patterns`
// windows of n x n, `batch` at a time on `threads` threads, as CpuReconstructor does.
double cpu_fft_round_trip_ms(int n, long patterns, int batch, int threads);

}  // namespace ptypilot
