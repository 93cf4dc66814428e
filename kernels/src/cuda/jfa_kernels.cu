// The Jump Flooding kernels: each is a thread index and one body from jfa_elements.hpp.
#include "kernel_launchers.hpp"

namespace ptypilot::gpu {
namespace {

constexpr int kThreads = 256;

unsigned blocks_for(long count) { return static_cast<unsigned>((count + kThreads - 1) / kThreads); }

__device__ int thread_index() { return static_cast<int>(blockIdx.x * blockDim.x + threadIdx.x); }

__global__ void clear_labels_kernel(int* labels, int pixels) {
  const int i = thread_index();
  if (i < pixels) labels[i] = -1;
}

__global__ void seed_labels_kernel(int* labels, const int* seed_pixel, int seeds) {
  const int m = thread_index();
  if (m < seeds && seed_pixel[m] >= 0) labels[seed_pixel[m]] = m;  // pixels are distinct
}

__global__ void jfa_pass_kernel(JfaPass pass, int pixels) {
  const int i = thread_index();
  if (i < pixels) pass.labels_out[i] = jfa_label_at(pass, i);
}

__global__ void reward_sum_kernel(const int* labels, int rows, int cols, int row0, int col0,
                                  const float* phase, int phase_cols, double* reward) {
  const int i = thread_index();
  if (i >= rows * cols) return;
  const RewardTerm term = reward_term_at(labels, cols, row0, col0, phase, phase_cols, i);
  if (term.seed >= 0) atomicAdd(reward + term.seed, static_cast<double>(term.phase));
}

}  // namespace

void launch_jfa_seed(int* labels, int pixels, const int* seed_pixel, int seeds,
                     cudaStream_t stream) {
  clear_labels_kernel<<<blocks_for(pixels), kThreads, 0, stream>>>(labels, pixels);
  seed_labels_kernel<<<blocks_for(seeds), kThreads, 0, stream>>>(labels, seed_pixel, seeds);
}

void launch_jfa_pass(const JfaPass& pass, cudaStream_t stream) {
  const int pixels = pass.rows * pass.cols;
  jfa_pass_kernel<<<blocks_for(pixels), kThreads, 0, stream>>>(pass, pixels);
}

void launch_reward_sum(const int* labels, int rows, int cols, int row0, int col0,
                       const float* phase, int phase_cols, double* reward, cudaStream_t stream) {
  reward_sum_kernel<<<blocks_for(long(rows) * cols), kThreads, 0, stream>>>(
      labels, rows, cols, row0, col0, phase, phase_cols, reward);
}

}  // namespace ptypilot::gpu
