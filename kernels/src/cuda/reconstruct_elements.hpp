// The per-element bodies of the CUDA reconstructor's kernels (reconstruct_kernels.cu), written
// once as __host__ __device__ functions. The kernels are a thread index and one call of these;
// a host test (kernels/tests/test_cuda_elements.cpp) runs the same bodies over the same index
// space, with FFTW standing in for cuFFT, and compares them with the CPU loops (cpu_loops.hpp)
// and CpuReconstructor. That checks the indexing, the scales and the math without a GPU; it
// does not check launches, cuFFT, copies, or the atomics of the gradient scatter.
//
// The math is CpuReconstructor's (reconstructor.hpp), element for element:
//   exit wave   e = probe_scale * probe[i, j] * exp(i V[top + i, left + j])
//   residual    Psi -> dL/dPsi* in place, returning the squared residual for the loss
//   gradient    dL/dV[top + i, left + j] += 2 Im(conj(e) * back), back = F^H dL/dPsi*
//   step        V -= step_map * dL/dV
// with one difference of order: the CPU keeps e in a buffer for the gradient, while the GPU
// recomputes it (V has not changed in between), so that one buffer per pattern suffices and
// the far field can be transformed in place.
#pragma once

#include <cmath>

#include "../amplitude_gradient.hpp"
#include "host_device.hpp"

namespace ptypilot::gpu {

// Layout of cufftComplex (float2) and of std::complex<float>.
struct alignas(8) Complex32 {
  float re;
  float im;
};

// ProbePlacement's layout (static_assert'ed in cuda_reconstructor.cpp, which sees both).
struct Window {
  int top;
  int left;
  int probe;
};

// What one evaluation of L(V) and dL/dV reads and writes: device pointers in the kernels, host
// pointers in the test.
struct GradientPass {
  const float* phase;  // V, object rows x object_cols
  int object_cols;
  const Window* windows;    // one per pattern
  const Complex32* probes;  // unit-normalised shifted probes, n x n each
  const float* measured;    // detector_pixels per pattern: counts (intensity) or their sqrt
  long detector_pixels;     // detector_px^2
  // The loss's weight per window element and the detector pixel each reads (detector.hpp), n x n
  // each; null where the detector is the window and unmasked, so measured is read in place.
  const float* pixel_weight;
  const int* detector_pixel;
  Complex32* waves;         // n x n per pattern: e, then Psi, dL/dPsi*, and back
  float* gradient;          // object-sized, accumulated into
  int n;
  long patterns;
  float probe_scale;      // sqrt(intensity scale) / n: the probe's counts and the unitary FFT
  float residual_weight;  // (amplitude ? 1 : 2) / patterns
  bool amplitude;
};

PTYPILOT_HD long pass_elements(const GradientPass& g) { return g.patterns * g.n * g.n; }

// The kernels that touch the object run on a grid of (pattern, element within the pattern), so
// that no thread divides a 64-bit index; `within` is row * n + col.
struct WindowElement {
  long pattern;
  int row;
  int col;
};

PTYPILOT_HD WindowElement window_element(const GradientPass& g, long pattern, int within) {
  return {pattern, within / g.n, within % g.n};
}

PTYPILOT_HD long element_index(const GradientPass& g, long pattern, int within) {
  return pattern * g.n * g.n + within;
}

PTYPILOT_HD long object_pixel(const GradientPass& g, const Window& w, const WindowElement& e) {
  return long(w.top + e.row) * g.object_cols + w.left + e.col;
}

PTYPILOT_HD Complex32 exit_wave_at(const GradientPass& g, long pattern, int within) {
  const WindowElement e = window_element(g, pattern, within);
  const Window w = g.windows[pattern];
  const float v = g.phase[object_pixel(g, w, e)];
  float s, c;
#if defined(__CUDA_ARCH__)
  sincosf(v, &s, &c);
#else
  s = std::sin(v);
  c = std::cos(v);
#endif
  const Complex32 p = g.probes[long(w.probe) * g.n * g.n + within];
  return {g.probe_scale * (p.re * c - p.im * s), g.probe_scale * (p.re * s + p.im * c)};
}

// Far field Psi -> dL/dPsi* in place, for L = weight/2 * sum (|Psi|^2 - J)^2 (intensity) or
// weight * sum (|Psi| - sqrt J)^2 (amplitude); returns this element's squared residual.
// The element functions are amplitude_gradient.hpp's, the CPU loops' own.
PTYPILOT_HD float residual_at(const GradientPass& g, long index) {
  Complex32& psi = g.waves[index];
  float measured, w = 1.0f;
  if (g.pixel_weight != nullptr) {
    // One 64-bit division per element, only where the detector is not the window.
    const long nn = long(g.n) * g.n;
    const long pattern = index / nn;
    const int within = static_cast<int>(index - pattern * nn);
    w = g.pixel_weight[within];
    measured = g.measured[pattern * g.detector_pixels + g.detector_pixel[within]];
  } else {
    measured = g.measured[index];
  }
  // Where the model has no amplitude the gradient has no direction; it is zero there
  // (amplitude_gradient.hpp: below a floor far above the FFT's rounding). probe_scale is the
  // far field's RMS amplitude.
  const float r =
      g.amplitude ? amplitude_element(psi.re, psi.im, measured, w, g.residual_weight, g.probe_scale)
                  : intensity_element(psi.re, psi.im, measured, w, g.residual_weight);
  return r * r;
}

struct GradientTerm {
  long pixel;
  float value;
};

// This element's term of dL/dV, and the object pixel it adds to. waves holds back = F^H dL/dPsi*.
PTYPILOT_HD GradientTerm gradient_term_at(const GradientPass& g, long pattern, int within) {
  const Complex32 e = exit_wave_at(g, pattern, within);
  const Complex32 back = g.waves[element_index(g, pattern, within)];
  return {object_pixel(g, g.windows[pattern], window_element(g, pattern, within)),
          2.0f * (e.re * back.im - e.im * back.re)};
}

// The loss is reduced in two stages so that it is the same from run to run: each block of the
// residual kernel sums a fixed range of elements into one double, and one block adds those.
inline constexpr int kResidualThreads = 256;
inline constexpr int kResidualElementsPerThread = 8;
inline constexpr long kResidualElementsPerBlock = long(kResidualThreads) * kResidualElementsPerThread;

PTYPILOT_HD long residual_blocks(long elements) {
  return (elements + kResidualElementsPerBlock - 1) / kResidualElementsPerBlock;
}

// The element that thread `thread` of block `block` handles in its k-th turn (adjacent threads
// take adjacent elements, so that the loads coalesce), or -1 past the end.
PTYPILOT_HD long residual_element(long block, int thread, int k, long elements) {
  const long index = block * kResidualElementsPerBlock + long(k) * kResidualThreads + thread;
  return index < elements ? index : -1;
}

struct DescentStep {
  float* phase;
  float* gradient;  // zeroed after use, ready for the next scatter
  const float* step_map;
  long pixels;
};

PTYPILOT_HD void descent_step_at(const DescentStep& d, long i, bool apply) {
  if (apply) d.phase[i] -= d.step_map[i] * d.gradient[i];
  d.gradient[i] = 0.0f;
}

}  // namespace ptypilot::gpu
