// The priors' step on V (reconstructor.hpp, "Priors"), one object pixel at a time, shared by
// CpuReconstructor (a loop) and the CUDA kernels (a thread per pixel), so that both backends
// regularise identically. It reads V and writes the new value elsewhere: the neighbours must
// be the old V for every pixel, whichever pixel runs first.
#pragma once

#include <cmath>

#include "cuda/host_device.hpp"

namespace ptypilot {

struct PriorStep {
  const float* phase;          // V before the step, rows x cols
  float* out;                  // V after it
  const float* dark_weight;    // dark_smoothing * (1 - W / max W) per pixel, or null
  int rows;
  int cols;
  float total_variation;       // 0: off
  float tv_epsilon;            // rad per pixel
  bool positivity;
  float sparsity;              // soft threshold per step, rad; 0: off
};

namespace prior_detail {

// V at (r, c), with the border clamped: zero flux across the object's edge.
PTYPILOT_HD float at(const PriorStep& p, int r, int c) {
  r = r < 0 ? 0 : (r >= p.rows ? p.rows - 1 : r);
  c = c < 0 ? 0 : (c >= p.cols ? p.cols - 1 : c);
  return p.phase[long(r) * p.cols + c];
}

PTYPILOT_HD float inverse_norm(float gy, float gx, float epsilon) {
#if defined(__CUDA_ARCH__)
  return rsqrtf(gy * gy + gx * gx + epsilon * epsilon);
#else
  return 1.0f / std::sqrt(gy * gy + gx * gx + epsilon * epsilon);
#endif
}

// The forward-difference gradient at (r, c), normalised by |grad V|_eps; the component across
// the border is zero.
struct Flux {
  float y;
  float x;
};
PTYPILOT_HD Flux tv_flux(const PriorStep& p, int r, int c) {
  const float v = at(p, r, c);
  const float gy = r + 1 < p.rows ? at(p, r + 1, c) - v : 0.0f;
  const float gx = c + 1 < p.cols ? at(p, r, c + 1) - v : 0.0f;
  const float s = inverse_norm(gy, gx, p.tv_epsilon);
  return {gy * s, gx * s};
}

}  // namespace prior_detail

PTYPILOT_HD float prior_value_at(const PriorStep& p, long i) {
  using namespace prior_detail;
  const int r = static_cast<int>(i / p.cols);
  const int c = static_cast<int>(i % p.cols);
  const float v = p.phase[i];
  float out = v;
  if (p.dark_weight != nullptr) {
    const float laplacian = at(p, r - 1, c) + at(p, r + 1, c) + at(p, r, c - 1) + at(p, r, c + 1) - 4.0f * v;
    out += p.dark_weight[i] * laplacian;
  }
  if (p.total_variation > 0.0f) {
    // div(flux) by backward differences, the adjoint of the forward-difference gradient.
    const Flux here = tv_flux(p, r, c);
    const float from_above = r > 0 ? tv_flux(p, r - 1, c).y : 0.0f;
    const float from_left = c > 0 ? tv_flux(p, r, c - 1).x : 0.0f;
    out += p.total_variation * ((here.y - from_above) + (here.x - from_left));
  }
  // Soft threshold, the proximal step of sparsity * |V|_1: shrinks every value towards zero by
  // the same amount, so that what a step adds from noise alone (smaller than the threshold) does
  // not accumulate, while atoms, which the data raise by more every step, stay. A NaN fails both
  // comparisons and passes through, so that the next loss reports the divergence.
  if (p.sparsity > 0.0f) {
    if (out > p.sparsity) out -= p.sparsity;
    else if (out < -p.sparsity) out += p.sparsity;
    else if (out == out) out = 0.0f;
  }
  // A NaN passes through, so that the next loss reports the divergence.
  if (p.positivity && out < 0.0f) out = 0.0f;
  return out;
}

}  // namespace ptypilot
