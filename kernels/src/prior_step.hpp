// The priors' step on V (reconstructor.hpp, "Priors"), one object pixel at a time, shared by
// CpuReconstructor (a loop) and the CUDA kernels (a thread per pixel), so that both backends
// regularise identically. It reads V and writes the new value elsewhere: the neighbours must
// be the old V for every pixel, whichever pixel runs first.
#pragma once

#include <cmath>
#include <type_traits>

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

// V at (r, c), with the border clamped: zero flux across the object's edge. kInterior: the
// caller's pixel is at least one away from every edge, so (r, c), a neighbour's, needs no clamp.
template <bool kInterior = false>
PTYPILOT_HD float at(const PriorStep& p, int r, int c) {
  if constexpr (!kInterior) {
    r = r < 0 ? 0 : (r >= p.rows ? p.rows - 1 : r);
    c = c < 0 ? 0 : (c >= p.cols ? p.cols - 1 : c);
  }
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
template <bool kInterior = false>
PTYPILOT_HD Flux tv_flux(const PriorStep& p, int r, int c) {
  const float v = at<kInterior>(p, r, c);
  const float gy = kInterior || r + 1 < p.rows ? at<kInterior>(p, r + 1, c) - v : 0.0f;
  const float gx = kInterior || c + 1 < p.cols ? at<kInterior>(p, r, c + 1) - v : 0.0f;
  const float s = inverse_norm(gy, gx, p.tv_epsilon);
  return {gy * s, gx * s};
}

}  // namespace prior_detail

// V after the step at row r, column c, for a step whose dark smoothing, total variation and
// sparsity are on or off as the flags say (prior_value_at below reads them from the step), and,
// with kInterior, for a pixel at least one away from every edge. The flags let a loop over the
// pixels compile without the branches that do nothing there: positivity alone vectorises, and
// the interior's neighbours need no clamping.
template <bool kDark, bool kTotalVariation, bool kSparsity, bool kInterior = false>
PTYPILOT_HD float prior_value_with(const PriorStep& p, int r, int c) {
  using namespace prior_detail;
  const long i = long(r) * p.cols + c;
  const float v = p.phase[i];
  float out = v;
  if constexpr (kDark) {
    const float laplacian = at<kInterior>(p, r - 1, c) + at<kInterior>(p, r + 1, c) +
                            at<kInterior>(p, r, c - 1) + at<kInterior>(p, r, c + 1) - 4.0f * v;
    out += p.dark_weight[i] * laplacian;
  }
  if constexpr (kTotalVariation) {
    // div(flux) by backward differences, the adjoint of the forward-difference gradient.
    const Flux here = tv_flux<kInterior>(p, r, c);
    const float from_above = kInterior || r > 0 ? tv_flux<kInterior>(p, r - 1, c).y : 0.0f;
    const float from_left = kInterior || c > 0 ? tv_flux<kInterior>(p, r, c - 1).x : 0.0f;
    out += p.total_variation * ((here.y - from_above) + (here.x - from_left));
  }
  // Soft threshold, the proximal step of sparsity * |V|_1: shrinks every value towards zero by
  // the same amount, so that what a step adds from noise alone (smaller than the threshold) does
  // not accumulate, while atoms, which the data raise by more every step, stay. A NaN fails both
  // comparisons and passes through, so that the next loss reports the divergence.
  if constexpr (kSparsity) {
    if (out > p.sparsity) out -= p.sparsity;
    else if (out < -p.sparsity) out += p.sparsity;
    else if (out == out) out = 0.0f;
  }
  // A NaN passes through, so that the next loss reports the divergence.
  if (p.positivity && out < 0.0f) out = 0.0f;
  return out;
}

// Calls f(dark, total_variation, sparsity), each a std::bool_constant saying whether the step
// runs that prior.
template <typename F>
PTYPILOT_HD decltype(auto) with_prior_flags(const PriorStep& p, F&& f) {
  using On = std::true_type;
  using Off = std::false_type;
  const bool dark = p.dark_weight != nullptr, tv = p.total_variation > 0.0f, sparse = p.sparsity > 0.0f;
  if (dark) {
    if (tv) return sparse ? f(On{}, On{}, On{}) : f(On{}, On{}, Off{});
    return sparse ? f(On{}, Off{}, On{}) : f(On{}, Off{}, Off{});
  }
  if (tv) return sparse ? f(Off{}, On{}, On{}) : f(Off{}, On{}, Off{});
  return sparse ? f(Off{}, Off{}, On{}) : f(Off{}, Off{}, Off{});
}

// V after the step at row r, column c.
PTYPILOT_HD float prior_value_at(const PriorStep& p, int r, int c) {
  return with_prior_flags(p, [&](auto dark, auto tv, auto sparse) {
    return prior_value_with<decltype(dark)::value, decltype(tv)::value, decltype(sparse)::value>(
        p, r, c);
  });
}

// The same at flat index i (the CUDA kernel's thread index).
PTYPILOT_HD float prior_value_at(const PriorStep& p, long i) {
  return prior_value_at(p, static_cast<int>(i / p.cols), static_cast<int>(i % p.cols));
}

}  // namespace ptypilot
