// The CUDA kernels of the reconstructor and the Jump Flooding reward, as plain launchers: device
// pointers (in the structs of reconstruct_elements.hpp and jfa_elements.hpp) and a stream. Each
// enqueues its work and returns at once; launch errors surface through cudaGetLastError() or
// the next synchronising call.
#pragma once

#include <cuda_runtime_api.h>

#include "../prior_step.hpp"
#include "jfa_elements.hpp"
#include "reconstruct_elements.hpp"

namespace ptypilot::gpu {

// waves = exit waves of every pattern (before the forward FFT).
void launch_exit_waves(const GradientPass& pass, cudaStream_t stream);

// waves: far fields -> dL/dPsi*; block_losses[b] = the squared residuals of block b
// (residual_blocks(pass_elements(pass)) of them).
void launch_residuals(const GradientPass& pass, double* block_losses, cudaStream_t stream);

// gradient += the terms of every element (waves hold the back-propagated dL/de*); atomics.
void launch_gradient_scatter(const GradientPass& pass, cudaStream_t stream);

// losses[*slot] = sum(block_losses) / patterns, then ++*slot; where that is not finite and
// `diverged` is given, *diverged = 1. One block, so the sum's order is fixed.
void launch_finish_loss(const double* block_losses, long blocks, double patterns, double* losses,
                        int* slot, int* diverged, cudaStream_t stream);

// V -= step_map * gradient unless *diverged, and gradient = 0 either way.
void launch_descent_step(const DescentStep& step, const int* diverged, cudaStream_t stream);

// step.out = the priors' step on step.phase (prior_step.hpp) unless *diverged, else a copy.
void launch_prior_step(const PriorStep& step, const int* diverged, cudaStream_t stream);

// labels = -1 on `pixels` pixels, then seed m at seed_pixel[m] (>= 0).
void launch_jfa_seed(int* labels, int pixels, const int* seed_pixel, int seeds,
                     cudaStream_t stream);

void launch_jfa_pass(const JfaPass& pass, cudaStream_t stream);

// reward[label] += phase for every labelled pixel of the rows x cols rectangle (double atomics).
void launch_reward_sum(const int* labels, int rows, int cols, int row0, int col0,
                       const float* phase, int phase_cols, double* reward, cudaStream_t stream);

}  // namespace ptypilot::gpu
