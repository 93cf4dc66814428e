// The reconstructor's kernels: each is a thread index and one body from reconstruct_elements.hpp.
#include "kernel_launchers.hpp"

namespace ptypilot::gpu {
namespace {

constexpr int kThreads = 256;

unsigned blocks_for(long count) { return static_cast<unsigned>((count + kThreads - 1) / kThreads); }

__device__ long thread_index() { return long(blockIdx.x) * blockDim.x + threadIdx.x; }

// Grids over (pattern, element within the pattern): blockIdx.x is the pattern.
dim3 window_grid(const GradientPass& pass) {
  return dim3(static_cast<unsigned>(pass.patterns), blocks_for(long(pass.n) * pass.n));
}

__device__ int thread_within_window() { return static_cast<int>(blockIdx.y * blockDim.x + threadIdx.x); }

__global__ void exit_waves_kernel(GradientPass pass) {
  const int within = thread_within_window();
  if (within >= pass.n * pass.n) return;
  pass.waves[element_index(pass, blockIdx.x, within)] = exit_wave_at(pass, blockIdx.x, within);
}

// Block sums in double over a fixed tree, so that the loss does not depend on scheduling.
template <int kWidth>
__device__ double block_sum(double value) {
  __shared__ double partial[kWidth];
  partial[threadIdx.x] = value;
  __syncthreads();
  for (int width = kWidth / 2; width > 0; width /= 2) {
    if (threadIdx.x < width) partial[threadIdx.x] += partial[threadIdx.x + width];
    __syncthreads();
  }
  return partial[0];
}

__global__ void residuals_kernel(GradientPass pass, long elements, double* block_losses) {
  float sum = 0.0f;
  for (int k = 0; k < kResidualElementsPerThread; ++k) {
    const long index = residual_element(blockIdx.x, threadIdx.x, k, elements);
    if (index >= 0) sum += residual_at(pass, index);
  }
  const double total = block_sum<kResidualThreads>(sum);
  if (threadIdx.x == 0) block_losses[blockIdx.x] = total;
}

__global__ void gradient_scatter_kernel(GradientPass pass) {
  const int within = thread_within_window();
  if (within >= pass.n * pass.n) return;
  const GradientTerm term = gradient_term_at(pass, blockIdx.x, within);
  atomicAdd(pass.gradient + term.pixel, term.value);
}

__global__ void finish_loss_kernel(const double* block_losses, long blocks, double patterns,
                                   double* losses, int* slot, int* diverged) {
  double sum = 0.0;
  for (long b = threadIdx.x; b < blocks; b += kThreads) sum += block_losses[b];
  const double total = block_sum<kThreads>(sum);
  if (threadIdx.x == 0) {
    const double loss = total / patterns;
    losses[*slot] = loss;
    *slot += 1;
    if (diverged != nullptr && !isfinite(loss)) *diverged = 1;
  }
}

__global__ void descent_step_kernel(DescentStep step, const int* diverged) {
  const long i = thread_index();
  if (i < step.pixels) descent_step_at(step, i, *diverged == 0);
}

__global__ void prior_step_kernel(PriorStep step, const int* diverged) {
  const long i = thread_index();
  if (i >= long(step.rows) * step.cols) return;
  step.out[i] = *diverged == 0 ? prior_value_at(step, i) : step.phase[i];
}

}  // namespace

void launch_exit_waves(const GradientPass& pass, cudaStream_t stream) {
  exit_waves_kernel<<<window_grid(pass), kThreads, 0, stream>>>(pass);
}

void launch_residuals(const GradientPass& pass, double* block_losses, cudaStream_t stream) {
  const long elements = pass_elements(pass);
  residuals_kernel<<<static_cast<unsigned>(residual_blocks(elements)), kResidualThreads, 0,
                     stream>>>(pass, elements, block_losses);
}

void launch_gradient_scatter(const GradientPass& pass, cudaStream_t stream) {
  gradient_scatter_kernel<<<window_grid(pass), kThreads, 0, stream>>>(pass);
}

void launch_finish_loss(const double* block_losses, long blocks, double patterns, double* losses,
                        int* slot, int* diverged, cudaStream_t stream) {
  finish_loss_kernel<<<1, kThreads, 0, stream>>>(block_losses, blocks, patterns, losses, slot,
                                                 diverged);
}

void launch_descent_step(const DescentStep& step, const int* diverged, cudaStream_t stream) {
  descent_step_kernel<<<blocks_for(step.pixels), kThreads, 0, stream>>>(step, diverged);
}

void launch_prior_step(const PriorStep& step, const int* diverged, cudaStream_t stream) {
  prior_step_kernel<<<blocks_for(long(step.rows) * step.cols), kThreads, 0, stream>>>(step,
                                                                                     diverged);
}

}  // namespace ptypilot::gpu
