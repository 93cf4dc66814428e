// voronoi_labels_jfa and voronoi_reward_jfa (reward.hpp): the host side of the Jump Flooding
// kernels. Training calls these once per episode, not per frame, so each call allocates its
// device arrays and throws on errors like the exact versions.
#include <cuda_runtime_api.h>

#include <algorithm>
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

class Stream {
 public:
  Stream() { check(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking), "cudaStreamCreate"); }
  ~Stream() {
    cudaStreamSynchronize(stream_);
    cudaStreamDestroy(stream_);
  }
  Stream(const Stream&) = delete;
  Stream& operator=(const Stream&) = delete;
  cudaStream_t get() const { return stream_; }

 private:
  cudaStream_t stream_ = nullptr;
};

// Labels of the rectangle's pixels on the device, after the last pass.
struct DeviceLabels {
  gpu::DeviceArray<int> front;
  gpu::DeviceArray<int> back;
  int* result = nullptr;
};

void flood(const ObjectGrid& grid, std::span<const Vec2> positions_A, const gpu::JfaRectangle& rect,
           cudaStream_t stream, DeviceLabels* labels) {
  const std::vector<gpu::SeedPoint> seeds = gpu::jfa_seed_points(grid, positions_A);
  const std::vector<int> seed_pixel = gpu::place_jfa_seeds(seeds, rect, grid.pixel_A);
  const int pixels = rect.rows * rect.cols;
  const int count = static_cast<int>(seeds.size());
  gpu::DeviceArray<gpu::SeedPoint> d_seeds;
  gpu::DeviceArray<int> d_seed_pixel;
  check(d_seeds.reserve(seeds.size(), false, stream));
  check(d_seed_pixel.reserve(seeds.size(), false, stream));
  check(labels->front.reserve(pixels, false, stream));
  check(labels->back.reserve(pixels, false, stream));
  check(cudaMemcpyAsync(d_seeds.data(), seeds.data(), seeds.size() * sizeof(gpu::SeedPoint),
                        cudaMemcpyHostToDevice, stream),
        "cudaMemcpyAsync (seeds)");
  check(cudaMemcpyAsync(d_seed_pixel.data(), seed_pixel.data(), seed_pixel.size() * sizeof(int),
                        cudaMemcpyHostToDevice, stream),
        "cudaMemcpyAsync (seed pixels)");
  gpu::launch_jfa_seed(labels->front.data(), pixels, d_seed_pixel.data(), count, stream);
  int* in = labels->front.data();
  int* out = labels->back.data();
  for (const int step : gpu::jfa_schedule(rect)) {
    const gpu::JfaPass pass{d_seeds.data(), in,        out,          rect.rows, rect.cols,
                            rect.row0,      rect.col0, grid.pixel_A, step};
    gpu::launch_jfa_pass(pass, stream);
    std::swap(in, out);
  }
  check(cudaGetLastError(), "kernel launch");
  // The seed arrays go when this returns; the passes must be done with them.
  check(cudaStreamSynchronize(stream), "cudaStreamSynchronize (jump flooding)");
  labels->result = in;
}

}  // namespace

Image<int> voronoi_labels_jfa(const ObjectGrid& grid, std::span<const Vec2> positions_A,
                              bool fov_only) {
  reward_detail::check_inputs("voronoi_labels_jfa", grid, positions_A);
  require_cuda("voronoi_labels_jfa");
  Image<int> labels(grid.rows, grid.cols, -1);
  const gpu::JfaRectangle rect = gpu::jfa_rectangle(grid, fov_only);
  if (rect.rows <= 0 || rect.cols <= 0) return labels;
  Stream stream;
  DeviceLabels device;
  flood(grid, positions_A, rect, stream.get(), &device);
  std::vector<int> inside(std::size_t(rect.rows) * rect.cols);
  check(cudaMemcpyAsync(inside.data(), device.result, inside.size() * sizeof(int),
                        cudaMemcpyDeviceToHost, stream.get()),
        "cudaMemcpyAsync (labels)");
  check(cudaStreamSynchronize(stream.get()), "cudaStreamSynchronize (labels)");
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
  Stream stream;
  DeviceLabels device;
  flood(grid, positions_A, rect, stream.get(), &device);
  gpu::DeviceArray<float> d_phase;
  gpu::DeviceArray<double> d_reward;
  check(d_phase.reserve(phase_rad.size(), false, stream.get()));
  check(d_reward.reserve(reward.size(), false, stream.get()));
  check(cudaMemcpyAsync(d_phase.data(), phase_rad.data(), phase_rad.size() * sizeof(float),
                        cudaMemcpyHostToDevice, stream.get()),
        "cudaMemcpyAsync (phase)");
  check(cudaMemsetAsync(d_reward.data(), 0, reward.size() * sizeof(double), stream.get()),
        "cudaMemsetAsync");
  gpu::launch_reward_sum(device.result, rect.rows, rect.cols, rect.row0, rect.col0,
                         d_phase.data(), phase_rad.cols(), d_reward.data(), stream.get());
  check(cudaGetLastError(), "kernel launch");
  check(cudaMemcpyAsync(reward.data(), d_reward.data(), reward.size() * sizeof(double),
                        cudaMemcpyDeviceToHost, stream.get()),
        "cudaMemcpyAsync (reward)");
  check(cudaStreamSynchronize(stream.get()), "cudaStreamSynchronize (reward)");
  const double P = static_cast<double>(positions_A.size());
  for (double& r : reward) r /= P;
  return reward;
}

}  // namespace ptypilot
