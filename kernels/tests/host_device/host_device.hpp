// A host stand-in for a GPU: the CUDA runtime and cuFFT calls ptypilot makes (include/), the
// kernel launchers (host_launchers.cpp) running the kernels' own bodies, so that
// CudaReconstructor, the Jump Flooding reward and the [cuda] tests themselves run, unchanged, on
// a machine without a GPU (ptypilot_kernels_host_device_tests).
//
// It is strict where a GPU would be: work queued on a stream runs only when the stream is
// synchronised (so reading results without synchronising gives stale data, as it would there);
// copies and memsets must stay inside allocations; capturing a graph refuses allocation,
// synchronisation and copies from pageable memory, as the runtime does; a plan made without
// automatic allocation needs a work area; cuFFT's results carry rounding of their own (a
// deterministic error of float epsilon times each transform's RMS), as cuFFT's differ from
// FFTW's, so that math that depends on the FFT's rounding fails here in every run. What it
// cannot show: anything of the real device, driver, cuFFT or compiler (timing, concurrency,
// atomics, the PTX), which only a GPU run shows.
#pragma once

#include <functional>

#include <cuda_runtime_api.h>

namespace ptypilot::host_device {

// Queues work on a stream, or records it into the graph the stream is capturing.
void enqueue(cudaStream_t stream, std::function<void()> work);

// Test controls and what the runtime saw.
void set_graph_capture_supported(bool supported);
struct Counters {
  long allocations = 0;
  long graph_launches = 0;
  long queued_outside_graphs = 0;  // kernels, copies, memsets and FFTs not in a graph
  long refused_during_capture = 0;
  long out_of_bounds = 0;
  long fft_plans = 0;  // cufftMakePlanMany calls
};
Counters counters();
void reset_counters();

}  // namespace ptypilot::host_device
