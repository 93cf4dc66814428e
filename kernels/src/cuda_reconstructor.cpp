#include "ptypilot/cuda_reconstructor.hpp"

#include <cuda_runtime_api.h>
#include <cufft.h>

#include <algorithm>
#include <bit>
#include <chrono>
#include <cmath>
#include <complex>
#include <cstddef>
#include <map>
#include <stdexcept>
#include <string>
#include <vector>

#include "cuda/device_array.hpp"
#include "cuda/kernel_launchers.hpp"
#include "ptypilot/cuda_support.hpp"

namespace ptypilot {
namespace {

using gpu::DeviceArray;
using gpu::cuda_error;

// The host's placements and probes are uploaded as they are.
static_assert(sizeof(gpu::Window) == sizeof(ProbePlacement) &&
              offsetof(gpu::Window, top) == offsetof(ProbePlacement, top) &&
              offsetof(gpu::Window, left) == offsetof(ProbePlacement, left) &&
              offsetof(gpu::Window, probe) == offsetof(ProbePlacement, probe));
static_assert(sizeof(gpu::Complex32) == sizeof(std::complex<float>) &&
              sizeof(gpu::Complex32) == sizeof(cufftComplex));

// Losses copied back per round trip: iterate(n) synchronises once per this many iterations.
constexpr int kLossSlots = 64;

// The FFTs run over the patterns padded to a multiple of this, in chunks of powers of two
// times it, one cuFFT plan per chunk size. Planning for the exact count made a new plan, at
// milliseconds, in every add_frames: on the decision path. With chunks, a session plans
// log2(frames / 64) times at most, and not at all on that path where the config says how many
// frames to expect (ReconstructorConfig::expected_frames). The padding costs under 64
// patterns' FFTs.
constexpr long kFftChunk = 64;

long padded_for_fft(long patterns) { return (patterns + kFftChunk - 1) / kFftChunk * kFftChunk; }

// The chunk sizes that make up `padded` (a multiple of kFftChunk), largest first.
std::vector<long> fft_chunks(long padded) {
  std::vector<long> chunks;
  for (long size = std::bit_floor(static_cast<unsigned long>(padded)); size >= kFftChunk; size /= 2)
    if (padded & size) chunks.push_back(size);
  return chunks;
}

const char* cufft_result_name(cufftResult r) {
  switch (r) {
    case CUFFT_SUCCESS: return "CUFFT_SUCCESS";
    case CUFFT_INVALID_PLAN: return "CUFFT_INVALID_PLAN";
    case CUFFT_ALLOC_FAILED: return "CUFFT_ALLOC_FAILED";
    case CUFFT_INVALID_VALUE: return "CUFFT_INVALID_VALUE";
    case CUFFT_INTERNAL_ERROR: return "CUFFT_INTERNAL_ERROR";
    case CUFFT_EXEC_FAILED: return "CUFFT_EXEC_FAILED";
    case CUFFT_SETUP_FAILED: return "CUFFT_SETUP_FAILED";
    case CUFFT_INVALID_SIZE: return "CUFFT_INVALID_SIZE";
    case CUFFT_INVALID_DEVICE: return "CUFFT_INVALID_DEVICE";
    case CUFFT_NO_WORKSPACE: return "CUFFT_NO_WORKSPACE";
    case CUFFT_NOT_IMPLEMENTED: return "CUFFT_NOT_IMPLEMENTED";
    case CUFFT_NOT_SUPPORTED: return "CUFFT_NOT_SUPPORTED";
    default: return "an unknown cufftResult";
  }
}

Status cufft_error(cufftResult r, const char* what) {
  return {StatusCode::kInternal, std::string("cuFFT ") + what + " failed: " + cufft_result_name(r)};
}

// The device first, so that a machine without one hears that, not about the config. The CPU's
// own settings are checked as CpuReconstructor does, so that one config is valid for both.
ReconstructorConfig checked_for_cuda(const ReconstructorConfig& config) {
  require_cuda("reconstructor backend 'cuda'");
  if (config.threads < 0) throw std::invalid_argument("reconstructor: threads must be >= 0");
  if (config.batch < 1) throw std::invalid_argument("reconstructor: batch must be >= 1");
  return config;
}

}  // namespace

struct CudaReconstructor::Device {
  cudaStream_t stream = nullptr;
  std::map<long, cufftHandle> plans;  // by chunk size (fft_chunks)
  std::size_t plan_work_bytes = 0;    // the largest work area a plan asked for
  cudaGraphExec_t graph = nullptr;
  bool graph_unavailable = false;

  DeviceArray<float> phase;
  DeviceArray<float> scratch_phase;  // the V of loss_and_gradient
  DeviceArray<float> gradient;       // zero between evaluations
  DeviceArray<float> step_map;
  DeviceArray<float> prior_phase;  // V after the priors' step, copied back into phase
  DeviceArray<float> dark_weight;  // FrameStore::dark_weight, where that prior is on
  DeviceArray<gpu::Window> windows;
  DeviceArray<gpu::Complex32> probes;
  DeviceArray<float> measured;
  DeviceArray<float> pixel_weight;   // FrameStore::window_weights, where the loss is weighted
  DeviceArray<int> detector_pixel;
  DeviceArray<gpu::Complex32> waves;
  DeviceArray<double> block_losses;
  DeviceArray<std::byte> fft_work;
  DeviceArray<double> losses;  // kLossSlots
  DeviceArray<int> flags;      // [0]: the next loss slot, [1]: diverged
  double* losses_host = nullptr;  // pinned, kLossSlots

  std::size_t uploaded_frames = 0;
  int uploaded_probes = 0;
  Status error;  // the first device failure; every later call returns it

  ~Device() {
    if (stream != nullptr) cudaStreamSynchronize(stream);
    if (graph != nullptr) cudaGraphExecDestroy(graph);
    for (const auto& [size, plan] : plans) cufftDestroy(plan);
    if (losses_host != nullptr) cudaFreeHost(losses_host);
    if (stream != nullptr) cudaStreamDestroy(stream);
  }

  int* slot() const { return flags.data(); }
  int* diverged() const { return flags.data() + 1; }

  void drop_graph() {
    if (graph != nullptr) cudaGraphExecDestroy(graph);
    graph = nullptr;
  }

  // A plan for every chunk of `padded` patterns that has none yet, sharing one work area.
  Status make_plans(long padded, int n) {
    bool made = false;
    for (const long size : fft_chunks(padded)) {
      if (plans.count(size)) continue;
      drop_graph();
      made = true;
      cufftHandle plan = 0;
      if (cufftResult r = cufftCreate(&plan); r != CUFFT_SUCCESS) return cufft_error(r, "cufftCreate");
      plans[size] = plan;
      // The work area is ours, grown here, so that cuFFT allocates nothing either.
      if (cufftResult r = cufftSetAutoAllocation(plan, 0); r != CUFFT_SUCCESS)
        return cufft_error(r, "cufftSetAutoAllocation");
      int dims[2] = {n, n};
      std::size_t work_bytes = 0;
      if (cufftResult r = cufftMakePlanMany(plan, 2, dims, nullptr, 1, n * n, nullptr, 1, n * n,
                                            CUFFT_C2C, static_cast<int>(size), &work_bytes);
          r != CUFFT_SUCCESS)
        return cufft_error(r, "cufftMakePlanMany");
      if (cufftResult r = cufftSetStream(plan, stream); r != CUFFT_SUCCESS)
        return cufft_error(r, "cufftSetStream");
      plan_work_bytes = std::max({plan_work_bytes, work_bytes, std::size_t(1)});
    }
    // The plans run one after another on one stream, so they share the largest work area.
    const std::size_t before = fft_work.capacity();
    if (Status s = fft_work.reserve(plan_work_bytes, false, stream); !s.ok()) return s;
    if (made || fft_work.capacity() != before) {
      for (const auto& [size, plan] : plans)
        if (cufftResult r = cufftSetWorkArea(plan, fft_work.data()); r != CUFFT_SUCCESS)
          return cufft_error(r, "cufftSetWorkArea");
    }
    return Status::Ok();
  }

  // The transform of the first `padded` waves, chunk by chunk.
  Status enqueue_fft(long padded, int n, int direction) {
    auto* data = reinterpret_cast<cufftComplex*>(waves.data());
    for (const long size : fft_chunks(padded)) {
      if (cufftResult r = cufftExecC2C(plans.at(size), data, data, direction); r != CUFFT_SUCCESS)
        return cufft_error(r, direction == CUFFT_FORWARD ? "cufftExecC2C (forward)"
                                                         : "cufftExecC2C (inverse)");
      data += std::size_t(size) * n * n;
    }
    return Status::Ok();
  }

  // Storage for `patterns` frames of `store`'s shape (the waves padded for the FFTs), and the
  // plans for them, allocated now rather than on the decision path.
  Status reserve_for(std::size_t patterns, const FrameStore& store, std::size_t probe_count) {
    const std::size_t nn = std::size_t(store.window_px()) * store.window_px();
    const std::size_t dd = std::size_t(store.detector_px()) * store.detector_px();
    const long padded = padded_for_fft(static_cast<long>(patterns));
    if (Status s = windows.reserve(patterns, true, stream); !s.ok()) return s;
    if (Status s = measured.reserve(patterns * dd, true, stream); !s.ok()) return s;
    if (Status s = probes.reserve(probe_count * nn, true, stream); !s.ok()) return s;
    const std::size_t waves_before = waves.capacity();
    if (Status s = waves.reserve(std::size_t(padded) * nn, false, stream); !s.ok()) return s;
    if (waves.capacity() != waves_before) {
      // The padding's transforms are never read; zeros keep them finite and initialised.
      if (cudaError_t e = cudaMemsetAsync(waves.data(), 0, waves.capacity() * sizeof(gpu::Complex32),
                                          stream);
          e != cudaSuccess)
        return cuda_error(e, "cudaMemsetAsync (waves)");
    }
    if (Status s = block_losses.reserve(gpu::residual_blocks(long(patterns * nn)), false, stream);
        !s.ok())
      return s;
    return make_plans(padded, store.window_px());
  }

  // Grows the buffers to the store and uploads what it appended since the last call.
  Status take(const FrameStore& store) {
    const std::size_t patterns = store.size();
    const int n = store.window_px();
    const std::size_t nn = std::size_t(n) * n;
    const std::size_t dd = std::size_t(store.detector_px()) * store.detector_px();
    const int probe_count = store.model().shifted_probe_count();
    drop_graph();  // it holds the old pointers and pattern count
    graph_unavailable = false;  // a capture that failed once may work with the new plans
    if (Status s = reserve_for(patterns, store, std::size_t(probe_count)); !s.ok()) return s;

    const std::size_t new_frames = patterns - uploaded_frames;
    cudaError_t e = cudaMemcpyAsync(windows.data() + uploaded_frames,
                                    store.placements().data() + uploaded_frames,
                                    new_frames * sizeof(gpu::Window), cudaMemcpyHostToDevice, stream);
    if (e == cudaSuccess)
      e = cudaMemcpyAsync(measured.data() + uploaded_frames * dd,
                          store.measured().data() + uploaded_frames * dd,
                          new_frames * dd * sizeof(float), cudaMemcpyHostToDevice, stream);
    if (e == cudaSuccess && probe_count > uploaded_probes)
      e = cudaMemcpyAsync(probes.data() + std::size_t(uploaded_probes) * nn,
                          store.model().shifted_probe(uploaded_probes),
                          std::size_t(probe_count - uploaded_probes) * nn * sizeof(gpu::Complex32),
                          cudaMemcpyHostToDevice, stream);
    if (e == cudaSuccess)
      e = cudaMemcpyAsync(step_map.data(), store.step_map().data(),
                          store.step_map().size() * sizeof(float), cudaMemcpyHostToDevice, stream);
    if (e == cudaSuccess && !store.dark_weight().empty())
      e = cudaMemcpyAsync(dark_weight.data(), store.dark_weight().data(),
                          store.dark_weight().size() * sizeof(float), cudaMemcpyHostToDevice,
                          stream);
    if (e != cudaSuccess) return cuda_error(e, "cudaMemcpyAsync (frames to the device)");
    // The host vectors may move once this returns.
    if (e = cudaStreamSynchronize(stream); e != cudaSuccess)
      return cuda_error(e, "cudaStreamSynchronize");
    uploaded_frames = patterns;
    uploaded_probes = probe_count;
    return Status::Ok();
  }

  gpu::GradientPass pass(const float* v, const FrameStore& store, Loss loss) const {
    const int n = store.window_px();
    const long patterns = static_cast<long>(store.size());
    const bool amplitude = loss == Loss::kAmplitude;
    gpu::GradientPass g{};
    g.phase = v;
    g.object_cols = store.step_map().cols();
    g.windows = windows.data();
    g.probes = probes.data();
    g.measured = measured.data();
    g.detector_pixels = long(store.detector_px()) * store.detector_px();
    g.pixel_weight = store.weighted() ? pixel_weight.data() : nullptr;
    g.detector_pixel = store.weighted() ? detector_pixel.data() : nullptr;
    g.waves = waves.data();
    g.gradient = gradient.data();
    g.n = n;
    g.patterns = patterns;
    // As CpuReconstructor::compute_gradient.
    g.probe_scale = static_cast<float>(std::sqrt(store.intensity_scale()) / n);
    g.residual_weight = static_cast<float>((amplitude ? 1.0 : 2.0) / patterns);
    g.amplitude = amplitude;
    return g;
  }

  // The loss into losses[*slot] and dL/dV into gradient.
  Status enqueue_gradient(const gpu::GradientPass& g, int* diverged_flag) {
    const long padded = padded_for_fft(g.patterns);
    gpu::launch_exit_waves(g, stream);
    if (Status s = enqueue_fft(padded, g.n, CUFFT_FORWARD); !s.ok()) return s;
    gpu::launch_residuals(g, block_losses.data(), stream);
    if (Status s = enqueue_fft(padded, g.n, CUFFT_INVERSE); !s.ok()) return s;
    gpu::launch_gradient_scatter(g, stream);
    gpu::launch_finish_loss(block_losses.data(), gpu::residual_blocks(gpu::pass_elements(g)),
                            static_cast<double>(g.patterns), losses.data(), slot(), diverged_flag,
                            stream);
    if (cudaError_t e = cudaGetLastError(); e != cudaSuccess) return cuda_error(e, "kernel launch");
    return Status::Ok();
  }

  Status enqueue_iteration(const FrameStore& store, const ReconstructorConfig& config) {
    if (Status s = enqueue_gradient(pass(phase.data(), store, config.loss), diverged()); !s.ok())
      return s;
    const RealImage& map = store.step_map();
    const gpu::DescentStep step{phase.data(), gradient.data(), step_map.data(),
                                static_cast<long>(map.size())};
    gpu::launch_descent_step(step, diverged(), stream);
    if (config.priors.any()) {
      // As CpuReconstructor::apply_priors.
      const PriorStep prior{phase.data(),
                            prior_phase.data(),
                            store.dark_weight().empty() ? nullptr : dark_weight.data(),
                            map.rows(),
                            map.cols(),
                            static_cast<float>(config.priors.total_variation),
                            kTotalVariationEpsilon,
                            config.priors.positivity,
                            static_cast<float>(config.priors.sparsity)};
      gpu::launch_prior_step(prior, diverged(), stream);
      if (cudaError_t e = cudaMemcpyAsync(phase.data(), prior_phase.data(), map.size() * sizeof(float),
                                          cudaMemcpyDeviceToDevice, stream);
          e != cudaSuccess)
        return cuda_error(e, "cudaMemcpyAsync (priors)");
    }
    if (cudaError_t e = cudaGetLastError(); e != cudaSuccess) return cuda_error(e, "kernel launch");
    return Status::Ok();
  }

  // One iteration as a graph, made once per set of buffers. Where capture fails (an old driver,
  // say), iterations are launched one by one instead, until the next add_frames: the same work,
  // more launch overhead. uses_graph() tells which, and the benchmarks report it.
  void ensure_graph(const FrameStore& store, const ReconstructorConfig& config) {
    if (graph != nullptr || graph_unavailable) return;
    if (cudaStreamBeginCapture(stream, cudaStreamCaptureModeThreadLocal) != cudaSuccess) {
      cudaGetLastError();
      graph_unavailable = true;
      return;
    }
    const Status captured = enqueue_iteration(store, config);
    cudaGraph_t recorded = nullptr;
    const cudaError_t ended = cudaStreamEndCapture(stream, &recorded);
    if (captured.ok() && ended == cudaSuccess && recorded != nullptr &&
        cudaGraphInstantiate(&graph, recorded, 0) == cudaSuccess) {
      cudaGraphDestroy(recorded);
      return;
    }
    if (recorded != nullptr) cudaGraphDestroy(recorded);
    graph = nullptr;
    graph_unavailable = true;
    cudaGetLastError();
  }
};

CudaReconstructor::CudaReconstructor(const ReconstructorConfig& config)
    : config_(checked_for_cuda(config)),
      frames_(config),
      device_(std::make_unique<Device>()),
      device_name_(cuda_support().device),
      phase_host_(config.object.rows, config.object.cols) {
  Device& d = *device_;
  const std::size_t pixels = phase_host_.size();
  auto check = [](cudaError_t e, const char* what) {
    if (e != cudaSuccess) throw std::runtime_error(cuda_error(e, what).message());
  };
  auto check_status = [](const Status& s) {
    if (!s.ok()) throw std::runtime_error(s.message());
  };
  check(cudaSetDevice(0), "cudaSetDevice");
  check(cudaStreamCreateWithFlags(&d.stream, cudaStreamNonBlocking), "cudaStreamCreate");
  check_status(d.phase.reserve(pixels, false, d.stream));
  check_status(d.scratch_phase.reserve(pixels, false, d.stream));
  check_status(d.gradient.reserve(pixels, false, d.stream));
  check_status(d.step_map.reserve(pixels, false, d.stream));
  check_status(d.prior_phase.reserve(pixels, false, d.stream));
  if (config_.priors.dark_smoothing > 0) check_status(d.dark_weight.reserve(pixels, false, d.stream));
  if (frames_.weighted()) {
    // Fixed by the config, so uploaded once.
    const WindowWeights& w = frames_.window_weights();
    check_status(d.pixel_weight.reserve(w.weight.size(), false, d.stream));
    check_status(d.detector_pixel.reserve(w.detector_pixel.size(), false, d.stream));
    check(cudaMemcpyAsync(d.pixel_weight.data(), w.weight.data(), w.weight.size() * sizeof(float),
                          cudaMemcpyHostToDevice, d.stream),
          "cudaMemcpyAsync (detector weights)");
    check(cudaMemcpyAsync(d.detector_pixel.data(), w.detector_pixel.data(),
                          w.detector_pixel.size() * sizeof(int), cudaMemcpyHostToDevice, d.stream),
          "cudaMemcpyAsync (detector pixels)");
  }
  check_status(d.losses.reserve(kLossSlots, false, d.stream));
  check_status(d.flags.reserve(2, false, d.stream));
  void* pinned = nullptr;
  check(cudaMallocHost(&pinned, kLossSlots * sizeof(double)), "cudaMallocHost");
  d.losses_host = static_cast<double*>(pinned);
  if (config_.expected_frames > 0) {
    // Probes: one per distinct sub-pixel remainder, at most one per frame; raster scans share
    // few, so the first 1024 are made room for and more grow as needed.
    const auto frames = static_cast<std::size_t>(config_.expected_frames);
    check_status(d.reserve_for(frames, frames_, std::min<std::size_t>(frames, 1024)));
  }
  check(cudaMemsetAsync(d.phase.data(), 0, pixels * sizeof(float), d.stream), "cudaMemsetAsync");
  check(cudaMemsetAsync(d.gradient.data(), 0, pixels * sizeof(float), d.stream), "cudaMemsetAsync");
  check(cudaMemsetAsync(d.flags.data(), 0, 2 * sizeof(int), d.stream), "cudaMemsetAsync");
  check(cudaStreamSynchronize(d.stream), "cudaStreamSynchronize");
}

CudaReconstructor::~CudaReconstructor() = default;

bool CudaReconstructor::uses_graph() const { return device_->graph != nullptr; }

Status CudaReconstructor::add_frames(std::span<const Frame> frames) {
  Device& d = *device_;
  if (!d.error.ok()) return d.error;
  if (Status s = frames_.add(frames); !s.ok()) return s;
  // The host store has the frames now; a device that cannot take them is broken for good.
  if (Status s = d.take(frames_); !s.ok()) d.error = s;
  return d.error;
}

Status CudaReconstructor::iterate(int iterations) {
  if (iterations < 0) return invalid_argument("iterations must be >= 0");
  if (frames_.empty()) return failed_precondition("no frames to reconstruct from");
  Device& d = *device_;
  if (!d.error.ok()) return d.error;
  if (iterations == 0) return Status::Ok();
  d.ensure_graph(frames_, config_);
  phase_host_current_ = false;
  auto fail = [&](const Status& s) {
    d.error = s;
    return s;
  };
  if (cudaError_t e = cudaMemsetAsync(d.flags.data(), 0, 2 * sizeof(int), d.stream); e != cudaSuccess)
    return fail(cuda_error(e, "cudaMemsetAsync"));
  for (int done = 0; done < iterations;) {
    const int chunk = std::min(kLossSlots, iterations - done);
    if (cudaError_t e = cudaMemsetAsync(d.slot(), 0, sizeof(int), d.stream); e != cudaSuccess)
      return fail(cuda_error(e, "cudaMemsetAsync"));
    for (int k = 0; k < chunk; ++k) {
      if (d.graph != nullptr) {
        if (cudaError_t e = cudaGraphLaunch(d.graph, d.stream); e != cudaSuccess)
          return fail(cuda_error(e, "cudaGraphLaunch"));
      } else if (Status s = d.enqueue_iteration(frames_, config_); !s.ok()) {
        return fail(s);
      }
    }
    if (cudaError_t e = cudaMemcpyAsync(d.losses_host, d.losses.data(), chunk * sizeof(double),
                                        cudaMemcpyDeviceToHost, d.stream);
        e != cudaSuccess)
      return fail(cuda_error(e, "cudaMemcpyAsync (losses)"));
    if (cudaError_t e = cudaStreamSynchronize(d.stream); e != cudaSuccess)
      return fail(cuda_error(e, "cudaStreamSynchronize (iterations)"));
    for (int k = 0; k < chunk; ++k) {
      // The device skipped this step and every later one (launch_descent_step), as the CPU
      // returns before it.
      if (!std::isfinite(d.losses_host[k]))
        return {StatusCode::kInternal, "reconstruction diverged (loss is not finite); lower step_size"};
      loss_history_.push_back(d.losses_host[k]);
      ++iterations_;
    }
    done += chunk;
  }
  return Status::Ok();
}

Status CudaReconstructor::loss_and_gradient(const RealImage& phase_rad, double* loss,
                                            RealImage* gradient) {
  if (Status s = check_potential(phase_rad, config_.object); !s.ok()) return s;
  if (frames_.empty()) return failed_precondition("no frames to evaluate the loss on");
  Device& d = *device_;
  if (!d.error.ok()) return d.error;
  if (gradient->rows() != phase_rad.rows() || gradient->cols() != phase_rad.cols())
    *gradient = RealImage(phase_rad.rows(), phase_rad.cols());
  const std::size_t bytes = phase_rad.size() * sizeof(float);
  cudaError_t e = cudaMemcpyAsync(d.scratch_phase.data(), phase_rad.data(), bytes,
                                  cudaMemcpyHostToDevice, d.stream);
  if (e == cudaSuccess) e = cudaMemsetAsync(d.slot(), 0, sizeof(int), d.stream);
  if (e != cudaSuccess) return d.error = cuda_error(e, "cudaMemcpyAsync (potential)");
  if (Status s = d.enqueue_gradient(d.pass(d.scratch_phase.data(), frames_, config_.loss), nullptr);
      !s.ok())
    return d.error = s;
  e = cudaMemcpyAsync(gradient->data(), d.gradient.data(), bytes, cudaMemcpyDeviceToHost, d.stream);
  if (e == cudaSuccess)
    e = cudaMemcpyAsync(d.losses_host, d.losses.data(), sizeof(double), cudaMemcpyDeviceToHost,
                        d.stream);
  if (e == cudaSuccess) e = cudaMemsetAsync(d.gradient.data(), 0, bytes, d.stream);
  if (e == cudaSuccess) e = cudaStreamSynchronize(d.stream);
  if (e != cudaSuccess) return d.error = cuda_error(e, "copying the gradient back");
  *loss = d.losses_host[0];
  return Status::Ok();
}

Potential CudaReconstructor::snapshot() const {
  Device& d = *device_;
  if (!phase_host_current_ && d.error.ok()) {
    cudaError_t e = cudaMemcpyAsync(phase_host_.data(), d.phase.data(),
                                    phase_host_.size() * sizeof(float), cudaMemcpyDeviceToHost,
                                    d.stream);
    if (e == cudaSuccess) e = cudaStreamSynchronize(d.stream);
    if (e == cudaSuccess)
      phase_host_current_ = true;
    else
      d.error = cuda_error(e, "copying the potential back");
  }
  return {phase_host_, config_.object, frames_.size(), iterations_, loss_history_};
}

Status CudaReconstructor::set_potential(const RealImage& phase_rad) {
  if (Status s = check_potential(phase_rad, config_.object); !s.ok()) return s;
  Device& d = *device_;
  if (!d.error.ok()) return d.error;
  cudaError_t e = cudaMemcpyAsync(d.phase.data(), phase_rad.data(), phase_rad.size() * sizeof(float),
                                  cudaMemcpyHostToDevice, d.stream);
  if (e == cudaSuccess) e = cudaStreamSynchronize(d.stream);
  if (e != cudaSuccess) return d.error = cuda_error(e, "cudaMemcpyAsync (potential)");
  phase_host_ = phase_rad;
  phase_host_current_ = true;
  return Status::Ok();
}

Status CudaReconstructor::time_fft_round_trip(double* milliseconds) {
  if (frames_.empty()) return failed_precondition("no frames to transform");
  Device& d = *device_;
  if (!d.error.ok()) return d.error;
  const int n = frames_.window_px();
  const long padded = padded_for_fft(static_cast<long>(frames_.size()));
  const std::size_t bytes = std::size_t(padded) * n * n * sizeof(cufftComplex);
  // Unnormalised round trips multiply by n^2 each; start from zeros so nothing overflows.
  cudaError_t e = cudaMemsetAsync(d.waves.data(), 0, bytes, d.stream);
  if (e == cudaSuccess) e = cudaStreamSynchronize(d.stream);
  if (e != cudaSuccess) return d.error = cuda_error(e, "cudaMemsetAsync (FFT buffer)");
  // The transforms an iteration runs, padding included.
  const auto t0 = std::chrono::steady_clock::now();
  if (Status s = d.enqueue_fft(padded, n, CUFFT_FORWARD); !s.ok()) return d.error = s;
  if (Status s = d.enqueue_fft(padded, n, CUFFT_INVERSE); !s.ok()) return d.error = s;
  if (e = cudaStreamSynchronize(d.stream); e != cudaSuccess)
    return d.error = cuda_error(e, "cudaStreamSynchronize (FFT)");
  *milliseconds =
      std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
  return Status::Ok();
}

}  // namespace ptypilot
