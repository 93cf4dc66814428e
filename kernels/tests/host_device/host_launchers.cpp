// The kernel launchers of src/cuda/kernel_launchers.hpp on the host stand-in: each queues, on
// the stand-in stream, a loop over the same grid as its kernel (reconstruct_kernels.cu,
// jfa_kernels.cu) calling the same body. The block sums run in index order where the GPU adds
// a tree, and the atomic additions in index order.
#include "cuda/kernel_launchers.hpp"

#include <cmath>
#include <vector>

#include "host_device.hpp"

namespace ptypilot::gpu {

using host_device::enqueue;

void launch_exit_waves(const GradientPass& pass, cudaStream_t stream) {
  enqueue(stream, [pass] {
    const int nn = pass.n * pass.n;
    for (long p = 0; p < pass.patterns; ++p)
      for (int k = 0; k < nn; ++k) pass.waves[element_index(pass, p, k)] = exit_wave_at(pass, p, k);
  });
}

void launch_residuals(const GradientPass& pass, double* block_losses, cudaStream_t stream) {
  enqueue(stream, [pass, block_losses] {
    const long elements = pass_elements(pass);
    for (long b = 0; b < residual_blocks(elements); ++b) {
      double block = 0.0;
      for (int t = 0; t < kResidualThreads; ++t) {
        float sum = 0.0f;
        for (int k = 0; k < kResidualElementsPerThread; ++k) {
          const long index = residual_element(b, t, k, elements);
          if (index >= 0) sum += residual_at(pass, index);
        }
        block += sum;
      }
      block_losses[b] = block;
    }
  });
}

void launch_gradient_scatter(const GradientPass& pass, cudaStream_t stream) {
  enqueue(stream, [pass] {
    const int nn = pass.n * pass.n;
    for (long p = 0; p < pass.patterns; ++p) {
      for (int k = 0; k < nn; ++k) {
        const GradientTerm term = gradient_term_at(pass, p, k);
        pass.gradient[term.pixel] += term.value;
      }
    }
  });
}

void launch_finish_loss(const double* block_losses, long blocks, double patterns, double* losses,
                        int* slot, int* diverged, cudaStream_t stream) {
  enqueue(stream, [=] {
    double total = 0.0;
    for (long b = 0; b < blocks; ++b) total += block_losses[b];
    const double loss = total / patterns;
    losses[*slot] = loss;
    *slot += 1;
    if (diverged != nullptr && !std::isfinite(loss)) *diverged = 1;
  });
}

void launch_descent_step(const DescentStep& step, const int* diverged, cudaStream_t stream) {
  enqueue(stream, [step, diverged] {
    for (long i = 0; i < step.pixels; ++i) descent_step_at(step, i, *diverged == 0);
  });
}

void launch_prior_step(const PriorStep& step, const int* diverged, cudaStream_t stream) {
  enqueue(stream, [step, diverged] {
    const long pixels = long(step.rows) * step.cols;
    for (long i = 0; i < pixels; ++i)
      step.out[i] = *diverged == 0 ? prior_value_at(step, i) : step.phase[i];
  });
}

void launch_jfa_seed(int* labels, int pixels, const int* seed_pixel, int seeds,
                     cudaStream_t stream) {
  enqueue(stream, [=] {
    for (int i = 0; i < pixels; ++i) labels[i] = -1;
    for (int m = 0; m < seeds; ++m)
      if (seed_pixel[m] >= 0) labels[seed_pixel[m]] = m;
  });
}

void launch_jfa_pass(const JfaPass& pass, cudaStream_t stream) {
  enqueue(stream, [pass] {
    for (int i = 0; i < pass.rows * pass.cols; ++i) pass.labels_out[i] = jfa_label_at(pass, i);
  });
}

void launch_reward_sum(const int* labels, int rows, int cols, int row0, int col0,
                       const float* phase, int phase_cols, double* reward, cudaStream_t stream) {
  enqueue(stream, [=] {
    for (int i = 0; i < rows * cols; ++i) {
      const RewardTerm term = reward_term_at(labels, cols, row0, col0, phase, phase_cols, i);
      if (term.seed >= 0) reward[term.seed] += term.phase;
    }
  });
}

}  // namespace ptypilot::gpu
