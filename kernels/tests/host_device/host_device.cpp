// The host stand-in's runtime and cuFFT (host_device.hpp).
#include "host_device.hpp"

#include <cufft.h>
#include <fftw3.h>

#include <cmath>
#include <complex>
#include <cstdint>
#include <cstring>
#include <limits>
#include <deque>
#include <map>
#include <memory>
#include <set>
#include <vector>

#include "ptypilot/fft.hpp"

struct CUstream_st {
  std::deque<std::function<void()>> queue;
  bool capturing = false;
  bool capture_invalidated = false;
  std::vector<std::function<void()>> captured;
};

struct CUgraph_st {
  std::vector<std::function<void()>> work;
};

struct CUgraphExec_st {
  std::vector<std::function<void()>> work;
};

namespace ptypilot::host_device {
namespace {

struct Runtime {
  std::set<CUstream_st*> streams;
  std::map<const char*, std::size_t> device_allocations;  // start -> bytes
  std::set<const void*> pinned;
  cudaError_t last_error = cudaSuccess;
  bool capture_supported = true;
  Counters counters;

  int capturing_streams() const {
    int n = 0;
    for (const CUstream_st* s : streams) n += s->capturing;
    return n;
  }
};

Runtime& runtime() {
  static Runtime r;
  return r;
}

cudaError_t fail(cudaError_t e) {
  runtime().last_error = e;
  return e;
}

// Whether [p, p + bytes) lies inside one device allocation.
bool on_device(const void* p, std::size_t bytes) {
  const auto& a = runtime().device_allocations;
  const char* c = static_cast<const char*>(p);
  auto it = a.upper_bound(c);
  if (it == a.begin()) return false;
  --it;
  return c >= it->first && c + bytes <= it->first + it->second;
}

void run_queue(CUstream_st* s) {
  while (!s->queue.empty()) {
    auto work = std::move(s->queue.front());
    s->queue.pop_front();
    work();
  }
}

void run_all() {
  for (CUstream_st* s : runtime().streams) run_queue(s);
}

// Refuses what the runtime refuses while this thread captures (allocation, synchronisation),
// and invalidates the captures, as the runtime does.
bool refused_while_capturing() {
  if (runtime().capturing_streams() == 0) return false;
  ++runtime().counters.refused_during_capture;
  for (CUstream_st* s : runtime().streams)
    if (s->capturing) s->capture_invalidated = true;
  return true;
}

}  // namespace

void enqueue(cudaStream_t stream, std::function<void()> work) {
  if (stream->capturing) {
    stream->captured.push_back(std::move(work));
  } else {
    ++runtime().counters.queued_outside_graphs;
    stream->queue.push_back(std::move(work));
  }
}

void set_graph_capture_supported(bool supported) { runtime().capture_supported = supported; }
Counters counters() { return runtime().counters; }
void reset_counters() { runtime().counters = {}; }

}  // namespace ptypilot::host_device

using namespace ptypilot::host_device;

cudaError_t cudaGetDeviceCount(int* count) {
  *count = 1;
  return cudaSuccess;
}

cudaError_t cudaGetDeviceProperties(cudaDeviceProp* properties, int) {
  std::strncpy(properties->name, "host stand-in (kernels/tests/host_device)", sizeof properties->name);
  properties->major = 0;
  properties->minor = 0;
  return cudaSuccess;
}

const char* cudaGetErrorString(cudaError_t error) {
  switch (error) {
    case cudaSuccess: return "no error";
    case cudaErrorInvalidValue: return "invalid argument";
    case cudaErrorMemoryAllocation: return "out of memory";
    case cudaErrorNotSupported: return "operation not supported";
    case cudaErrorStreamCaptureUnsupported: return "operation not permitted when stream is capturing";
    case cudaErrorStreamCaptureInvalidated: return "operation failed due to a previous error during capture";
  }
  return "unknown error";
}

cudaError_t cudaGetLastError() {
  const cudaError_t e = runtime().last_error;
  runtime().last_error = cudaSuccess;
  return e;
}

cudaError_t cudaSetDevice(int device) { return device == 0 ? cudaSuccess : fail(cudaErrorInvalidValue); }

cudaError_t cudaStreamCreateWithFlags(cudaStream_t* stream, unsigned) {
  *stream = new CUstream_st;
  runtime().streams.insert(*stream);
  return cudaSuccess;
}

cudaError_t cudaStreamDestroy(cudaStream_t stream) {
  run_queue(stream);
  runtime().streams.erase(stream);
  delete stream;
  return cudaSuccess;
}

cudaError_t cudaStreamSynchronize(cudaStream_t stream) {
  if (refused_while_capturing()) return fail(cudaErrorStreamCaptureUnsupported);
  run_queue(stream);
  return cudaSuccess;
}

cudaError_t cudaMalloc(void** pointer, std::size_t bytes) {
  if (refused_while_capturing()) return fail(cudaErrorStreamCaptureUnsupported);
  // FFTW's alignment, which the stand-in cuFFT's plans assume.
  void* p = fftwf_malloc(std::max<std::size_t>(bytes, 1));
  if (p == nullptr) return fail(cudaErrorMemoryAllocation);
  std::memset(p, 0xA5, bytes);  // not zero: code that forgets to clear shows it
  runtime().device_allocations[static_cast<const char*>(p)] = bytes;
  ++runtime().counters.allocations;
  *pointer = p;
  return cudaSuccess;
}

cudaError_t cudaFree(void* pointer) {
  if (pointer == nullptr) return cudaSuccess;
  if (refused_while_capturing()) return fail(cudaErrorStreamCaptureUnsupported);
  run_all();  // cudaFree synchronises the device
  if (runtime().device_allocations.erase(static_cast<const char*>(pointer)) == 0)
    return fail(cudaErrorInvalidValue);
  fftwf_free(pointer);
  return cudaSuccess;
}

cudaError_t cudaMallocHost(void** pointer, std::size_t bytes) {
  if (refused_while_capturing()) return fail(cudaErrorStreamCaptureUnsupported);
  *pointer = std::malloc(std::max<std::size_t>(bytes, 1));
  runtime().pinned.insert(*pointer);
  return cudaSuccess;
}

cudaError_t cudaFreeHost(void* pointer) {
  run_all();
  runtime().pinned.erase(pointer);
  std::free(pointer);
  return cudaSuccess;
}

cudaError_t cudaMemcpyAsync(void* to, const void* from, std::size_t bytes, cudaMemcpyKind kind,
                            cudaStream_t stream) {
  const bool to_device = kind == cudaMemcpyHostToDevice || kind == cudaMemcpyDeviceToDevice;
  const bool from_device = kind == cudaMemcpyDeviceToHost || kind == cudaMemcpyDeviceToDevice;
  if ((to_device && !on_device(to, bytes)) || (from_device && !on_device(from, bytes))) {
    ++runtime().counters.out_of_bounds;
    return fail(cudaErrorInvalidValue);
  }
  const void* host = kind == cudaMemcpyHostToDevice ? from : kind == cudaMemcpyDeviceToHost ? to : nullptr;
  const bool pageable = host != nullptr && runtime().pinned.count(host) == 0;
  if (stream->capturing && pageable) {
    // Graphs cannot hold copies from or to pageable memory.
    stream->capture_invalidated = true;
    ++runtime().counters.refused_during_capture;
    return fail(cudaErrorStreamCaptureUnsupported);
  }
  auto copy = [to, from, bytes] { std::memcpy(to, from, bytes); };
  if (pageable) {
    // The runtime copies pageable memory once the stream's earlier work is done, before it
    // returns: the source may change afterwards, and the destination is written by then.
    run_queue(stream);
    copy();
  } else {
    enqueue(stream, copy);
  }
  return cudaSuccess;
}

cudaError_t cudaMemsetAsync(void* to, int value, std::size_t bytes, cudaStream_t stream) {
  if (!on_device(to, bytes)) {
    ++runtime().counters.out_of_bounds;
    return fail(cudaErrorInvalidValue);
  }
  enqueue(stream, [to, value, bytes] { std::memset(to, value, bytes); });
  return cudaSuccess;
}

cudaError_t cudaStreamBeginCapture(cudaStream_t stream, cudaStreamCaptureMode) {
  if (!runtime().capture_supported) return fail(cudaErrorNotSupported);
  if (stream->capturing) return fail(cudaErrorInvalidValue);
  stream->capturing = true;
  stream->capture_invalidated = false;
  stream->captured.clear();
  return cudaSuccess;
}

cudaError_t cudaStreamEndCapture(cudaStream_t stream, cudaGraph_t* graph) {
  if (!stream->capturing) return fail(cudaErrorInvalidValue);
  stream->capturing = false;
  if (stream->capture_invalidated) {
    *graph = nullptr;
    stream->captured.clear();
    return fail(cudaErrorStreamCaptureInvalidated);
  }
  *graph = new CUgraph_st{std::move(stream->captured)};
  stream->captured.clear();
  return cudaSuccess;
}

cudaError_t cudaGraphInstantiate(cudaGraphExec_t* exec, cudaGraph_t graph, unsigned long long) {
  *exec = new CUgraphExec_st{graph->work};
  return cudaSuccess;
}

cudaError_t cudaGraphDestroy(cudaGraph_t graph) {
  delete graph;
  return cudaSuccess;
}

cudaError_t cudaGraphExecDestroy(cudaGraphExec_t exec) {
  run_all();
  delete exec;
  return cudaSuccess;
}

cudaError_t cudaGraphLaunch(cudaGraphExec_t exec, cudaStream_t stream) {
  ++runtime().counters.graph_launches;
  for (const auto& work : exec->work) stream->queue.push_back(work);
  return cudaSuccess;
}

// cuFFT: FFTW plans of the same layout (batches of contiguous n x n arrays) and sign.
namespace {

struct Plan {
  bool automatic_allocation = true;
  void* work_area = nullptr;
  cudaStream_t stream = nullptr;
  int n = 0;
  int batch = 0;
  std::unique_ptr<ptypilot::BatchedFft> forward, inverse;
};

std::map<cufftHandle, Plan>& plans() {
  static std::map<cufftHandle, Plan> p;
  return p;
}

constexpr std::size_t kWorkBytes = 4096;

std::uint64_t mixed(std::uint64_t x) {  // splitmix64's finaliser
  x += 0x9E3779B97F4A7C15ull;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}

// cuFFT's butterflies are not FFTW's, nor is one FFTW plan another's: the same transform
// differs by rounding, about float epsilon times the transform's RMS in every element, also
// where the exact result is zero (measured, 40 random 64 x 64 transforms, FFTW with and without
// SIMD: median 1, largest 5.7 epsilon times the RMS; this adds at most 2.8) (and FFTW_MEASURE on the CPU picks its algorithm by timing, so
// the CPU's own rounding changes from run to run). The stand-in adds to each transform's
// output an error of that size, a hash of the element's place and value, so that a result that
// depends on the FFT's rounding rather than on the transform differs from the CPU's in every
// run, as it would on a GPU, not only in the runs where the CPU's planner picked another
// algorithm. Deterministic: the same input gives the same output.
void round_as_another_fft(std::complex<float>* data, int n, int batch) {
  const std::size_t nn = std::size_t(n) * n;
  for (int p = 0; p < batch; ++p) {
    std::complex<float>* x = data + p * nn;
    double power = 0.0;
    for (std::size_t k = 0; k < nn; ++k) power += std::norm(x[k]);
    const float size = 2 * std::numeric_limits<float>::epsilon() *
                       static_cast<float>(std::sqrt(power / double(nn)));
    for (std::size_t k = 0; k < nn; ++k) {
      std::uint64_t bits = 0;
      std::memcpy(&bits, &x[k], sizeof bits);
      const std::uint64_t h = mixed(bits ^ mixed(p * nn + k));
      const float u = static_cast<float>(h >> 40) * 0x1p-23f - 1.0f;  // [-1, 1)
      const float v = static_cast<float>((h >> 16) & 0xFFFFFF) * 0x1p-23f - 1.0f;
      x[k] += std::complex<float>(size * u, size * v);
    }
  }
}

}  // namespace

cufftResult cufftCreate(cufftHandle* plan) {
  static cufftHandle next = 1;
  *plan = next++;
  plans()[*plan];
  return CUFFT_SUCCESS;
}

cufftResult cufftDestroy(cufftHandle plan) {
  run_all();
  return plans().erase(plan) ? CUFFT_SUCCESS : CUFFT_INVALID_PLAN;
}

cufftResult cufftSetAutoAllocation(cufftHandle plan, int automatic) {
  if (!plans().count(plan)) return CUFFT_INVALID_PLAN;
  plans()[plan].automatic_allocation = automatic != 0;
  return CUFFT_SUCCESS;
}

cufftResult cufftMakePlanMany(cufftHandle plan, int rank, int* n, int* inembed, int, int,
                              int* onembed, int, int, cufftType type, int batch,
                              std::size_t* work_size) {
  if (!plans().count(plan)) return CUFFT_INVALID_PLAN;
  if (rank != 2 || n[0] != n[1] || inembed != nullptr || onembed != nullptr || type != CUFFT_C2C ||
      batch < 1)
    return CUFFT_NOT_SUPPORTED;  // the stand-in knows the one layout ptypilot uses
  ++runtime().counters.fft_plans;
  Plan& p = plans()[plan];
  p.n = n[0];
  p.batch = batch;
  p.forward = std::make_unique<ptypilot::BatchedFft>(p.n, batch, ptypilot::FftDirection::kForward);
  p.inverse = std::make_unique<ptypilot::BatchedFft>(p.n, batch, ptypilot::FftDirection::kBackward);
  *work_size = kWorkBytes;
  return CUFFT_SUCCESS;
}

cufftResult cufftSetWorkArea(cufftHandle plan, void* work_area) {
  if (!plans().count(plan)) return CUFFT_INVALID_PLAN;
  if (!on_device(work_area, kWorkBytes)) return CUFFT_INVALID_VALUE;
  plans()[plan].work_area = work_area;
  return CUFFT_SUCCESS;
}

cufftResult cufftSetStream(cufftHandle plan, cudaStream_t stream) {
  if (!plans().count(plan)) return CUFFT_INVALID_PLAN;
  plans()[plan].stream = stream;
  return CUFFT_SUCCESS;
}

cufftResult cufftExecC2C(cufftHandle plan, cufftComplex* in, cufftComplex* out, int direction) {
  if (!plans().count(plan)) return CUFFT_INVALID_PLAN;
  Plan& p = plans()[plan];
  if (!p.forward) return CUFFT_INVALID_PLAN;
  if (!p.automatic_allocation && p.work_area == nullptr) return CUFFT_NO_WORKSPACE;
  if (in != out) return CUFFT_NOT_SUPPORTED;  // in place only, as ptypilot uses it
  if (!on_device(in, std::size_t(p.batch) * p.n * p.n * sizeof(cufftComplex))) {
    ++runtime().counters.out_of_bounds;
    return CUFFT_INVALID_VALUE;
  }
  const ptypilot::BatchedFft* fft = direction == CUFFT_FORWARD ? p.forward.get() : p.inverse.get();
  auto* data = reinterpret_cast<std::complex<float>*>(in);
  enqueue(p.stream, [fft, data, n = p.n, batch = p.batch] {
    fft->execute(data);
    round_as_another_fft(data, n, batch);
  });
  return CUFFT_SUCCESS;
}
