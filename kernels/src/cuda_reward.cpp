// voronoi_labels_jfa and voronoi_reward_jfa (reward.hpp): the host side of the Jump Flooding
// kernels. They throw on errors like the exact versions. A call takes about as long as its
// launches: the stream and the device arrays are kept from call to call (a Workspace), since
// creating a stream and allocating cost more than the flooding itself at 200 x 200.
#include <cuda_runtime_api.h>

#include <algorithm>
#include <mutex>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "cuda/device_array.hpp"
#include "cuda/jfa_seeding.hpp"
#include "cuda/kernel_launchers.hpp"
#include "ptypilot/cuda_support.hpp"
#include "ptypilot/reward.hpp"
#include "reward_checks.hpp"

namespace ptypilot {
namespace {

void check(cudaError_t e, const char* what) {
  if (e != cudaSuccess) throw std::runtime_error(gpu::cuda_error(e, what).message());
}

void check(const Status& s) {
  if (!s.ok()) throw std::runtime_error(s.message());
}

// One stream and the device arrays of the calls, grown as needed. Calls take turns (the
// mutex); training runs one episode's reward at a time per process. Never destroyed: a static
// with CUDA resources would be torn down after the CUDA runtime at exit.
struct Workspace {
  std::mutex mutex;
  cudaStream_t stream = nullptr;
  gpu::DeviceArray<gpu::SeedPoint> seeds;
  gpu::DeviceArray<int> seed_pixel;
  gpu::DeviceArray<int> front;
  gpu::DeviceArray<int> back;
  gpu::DeviceArray<float> phase;
  gpu::DeviceArray<double> reward;
  int* result = nullptr;  // the labels of the rectangle's pixels after the last pass
};

Workspace& workspace() {
  static Workspace* w = [] {
    auto* made = new Workspace;
    check(cudaStreamCreateWithFlags(&made->stream, cudaStreamNonBlocking), "cudaStreamCreate");
    return made;
  }();
  return *w;
}

// Enqueues the flooding; the seeds' host arrays are copied before this returns (pageable).
void flood(const ObjectGrid& grid, std::span<const Vec2> positions_A, const gpu::JfaRectangle& rect,
           Workspace* w) {
  const std::vector<gpu::SeedPoint> seeds = gpu::jfa_seed_points(grid, positions_A);
  const std::vector<int> seed_pixel = gpu::place_jfa_seeds(seeds, rect, grid.pixel_A);
  const int pixels = rect.rows * rect.cols;
  const int count = static_cast<int>(seeds.size());
  cudaStream_t stream = w->stream;
  check(w->seeds.reserve(seeds.size(), false, stream));
  check(w->seed_pixel.reserve(seeds.size(), false, stream));
  check(w->front.reserve(pixels, false, stream));
  check(w->back.reserve(pixels, false, stream));
  check(cudaMemcpyAsync(w->seeds.data(), seeds.data(), seeds.size() * sizeof(gpu::SeedPoint),
                        cudaMemcpyHostToDevice, stream),
        "cudaMemcpyAsync (seeds)");
  check(cudaMemcpyAsync(w->seed_pixel.data(), seed_pixel.data(), seed_pixel.size() * sizeof(int),
                        cudaMemcpyHostToDevice, stream),
        "cudaMemcpyAsync (seed pixels)");
  gpu::launch_jfa_seed(w->front.data(), pixels, w->seed_pixel.data(), count, stream);
  int* in = w->front.data();
  int* out = w->back.data();
  for (const int step : gpu::jfa_schedule(rect)) {
    const gpu::JfaPass pass{w->seeds.data(), in,        out,          rect.rows, rect.cols,
                            rect.row0,       rect.col0, grid.pixel_A, step};
    gpu::launch_jfa_pass(pass, stream);
    std::swap(in, out);
  }
  check(cudaGetLastError(), "kernel launch");
  w->result = in;
}

}  // namespace

Image<int> voronoi_labels_jfa(const ObjectGrid& grid, std::span<const Vec2> positions_A,
                              bool fov_only) {
  reward_detail::check_inputs("voronoi_labels_jfa", grid, positions_A);
  require_cuda("voronoi_labels_jfa");
  Image<int> labels(grid.rows, grid.cols, -1);
  const gpu::JfaRectangle rect = gpu::jfa_rectangle(grid, fov_only);
  if (rect.rows <= 0 || rect.cols <= 0) return labels;
  Workspace& w = workspace();
  std::lock_guard lock(w.mutex);
  flood(grid, positions_A, rect, &w);
  std::vector<int> inside(std::size_t(rect.rows) * rect.cols);
  check(cudaMemcpyAsync(inside.data(), w.result, inside.size() * sizeof(int),
                        cudaMemcpyDeviceToHost, w.stream),
        "cudaMemcpyAsync (labels)");
  check(cudaStreamSynchronize(w.stream), "cudaStreamSynchronize (labels)");
  for (int r = 0; r < rect.rows; ++r)
    std::copy_n(inside.data() + std::size_t(r) * rect.cols, rect.cols,
                &labels(rect.row0 + r, rect.col0));
  return labels;
}

std::vector<double> voronoi_reward_jfa(const RealImage& phase_rad, const ObjectGrid& grid,
                                       std::span<const Vec2> positions_A) {
  reward_detail::check_reward_inputs("voronoi_reward_jfa", phase_rad, grid, positions_A);
  require_cuda("voronoi_reward_jfa");
  std::vector<double> reward(positions_A.size(), 0.0);
  const gpu::JfaRectangle rect = gpu::jfa_rectangle(grid, /*fov_only=*/true);
  if (rect.rows <= 0 || rect.cols <= 0) return reward;
  Workspace& w = workspace();
  std::lock_guard lock(w.mutex);
  // Grown before the flooding is queued, so that no reallocation frees memory queued work uses.
  check(w.phase.reserve(phase_rad.size(), false, w.stream));
  check(w.reward.reserve(reward.size(), false, w.stream));
  flood(grid, positions_A, rect, &w);
  check(cudaMemcpyAsync(w.phase.data(), phase_rad.data(), phase_rad.size() * sizeof(float),
                        cudaMemcpyHostToDevice, w.stream),
        "cudaMemcpyAsync (phase)");
  check(cudaMemsetAsync(w.reward.data(), 0, reward.size() * sizeof(double), w.stream),
        "cudaMemsetAsync");
  gpu::launch_reward_sum(w.result, rect.rows, rect.cols, rect.row0, rect.col0, w.phase.data(),
                         phase_rad.cols(), w.reward.data(), w.stream);
  check(cudaGetLastError(), "kernel launch");
  check(cudaMemcpyAsync(reward.data(), w.reward.data(), reward.size() * sizeof(double),
                        cudaMemcpyDeviceToHost, w.stream),
        "cudaMemcpyAsync (reward)");
  check(cudaStreamSynchronize(w.stream), "cudaStreamSynchronize (reward)");
  const double P = static_cast<double>(positions_A.size());
  for (double& r : reward) r /= P;
  return reward;
}

}  // namespace ptypilot
