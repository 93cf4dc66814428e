#include "cpu_loops.hpp"

#include "amplitude_gradient.hpp"
#include "prior_step.hpp"

#include <algorithm>
#include <cmath>

namespace ptypilot::cpu {

PTYPILOT_CPU_CLONES
void exit_wave(const std::complex<float>* t, int t_cols, int top, int left,
               const std::complex<float>* probe, int n, float scale, std::complex<float>* out) {
  for (int i = 0; i < n; ++i) {
    const float* tr = reinterpret_cast<const float*>(t + std::size_t(top + i) * t_cols + left);
    const float* pr = reinterpret_cast<const float*>(probe + std::size_t(i) * n);
    float* o = reinterpret_cast<float*>(out + std::size_t(i) * n);
#pragma omp simd
    for (int j = 0; j < n; ++j) {
      const float a = pr[2 * j], b = pr[2 * j + 1], c = tr[2 * j], d = tr[2 * j + 1];
      o[2 * j] = scale * (a * c - b * d);
      o[2 * j + 1] = scale * (a * d + b * c);
    }
  }
}

// The loops with and without per-element weights call the same element functions
// (amplitude_gradient.hpp); the weightless ones pass w = 1 as a constant, which the compiler
// drops, and keep their own loop so that they vectorise, and sum, as before weights existed.
template <bool kWeighted, typename Element>
inline __attribute__((always_inline)) double residual_loop(std::complex<float>* psi,
                                                           const float* measured,
                                                           const int* detector_pixel,
                                                           const float* pixel_weight,
                                                           std::size_t count, Element element) {
  float* w = reinterpret_cast<float*>(psi);
  // Partial sums per block of 256 keep float accumulation error far below the loss' noise.
  double total = 0.0;
  for (std::size_t start = 0; start < count; start += 256) {
    const std::size_t end = std::min(count, start + 256);
    float sum = 0.0f;
#pragma omp simd reduction(+ : sum)
    for (std::size_t k = start; k < end; ++k) {
      float r;
      if constexpr (kWeighted)
        r = element(w[2 * k], w[2 * k + 1], measured[detector_pixel[k]], pixel_weight[k]);
      else
        r = element(w[2 * k], w[2 * k + 1], measured[k], 1.0f);
      sum += r * r;
    }
    total += sum;
  }
  return total;
}

PTYPILOT_CPU_CLONES
double portable::intensity_residual(std::complex<float>* psi, const float* measured,
                                    std::size_t count, float weight) {
  float* w = reinterpret_cast<float*>(psi);
  double total = 0.0;
  for (std::size_t start = 0; start < count; start += 256) {
    const std::size_t end = std::min(count, start + 256);
    float sum = 0.0f;
#pragma omp simd reduction(+ : sum)
    for (std::size_t k = start; k < end; ++k) {
      const float r = intensity_element(w[2 * k], w[2 * k + 1], measured[k], 1.0f, weight);
      sum += r * r;
    }
    total += sum;
  }
  return total;
}

PTYPILOT_CPU_CLONES
double portable::intensity_residual_weighted(std::complex<float>* psi, const float* measured,
                                             const int* detector_pixel, const float* pixel_weight,
                                             std::size_t count, float weight) {
  return residual_loop<true>(psi, measured, detector_pixel, pixel_weight, count,
                             [weight](float& re, float& im, float m, float pw) {
                               return intensity_element(re, im, m, pw, weight);
                             });
}

// Where the model has no amplitude the gradient has no direction; it is zero there
// (amplitude_gradient.hpp: below a floor far above the FFT's rounding).
PTYPILOT_CPU_CLONES
double portable::amplitude_residual(std::complex<float>* psi, const float* measured_sqrt,
                                    std::size_t count, float weight, float rms_amplitude) {
  float* w = reinterpret_cast<float*>(psi);
  double total = 0.0;
  for (std::size_t start = 0; start < count; start += 256) {
    const std::size_t end = std::min(count, start + 256);
    float sum = 0.0f;
#pragma omp simd reduction(+ : sum)
    for (std::size_t k = start; k < end; ++k) {
      const float r = amplitude_element(w[2 * k], w[2 * k + 1], measured_sqrt[k], 1.0f, weight,
                                        rms_amplitude);
      sum += r * r;
    }
    total += sum;
  }
  return total;
}

PTYPILOT_CPU_CLONES
double portable::amplitude_residual_weighted(std::complex<float>* psi, const float* measured_sqrt,
                                             const int* detector_pixel, const float* pixel_weight,
                                             std::size_t count, float weight,
                                             float rms_amplitude) {
  return residual_loop<true>(psi, measured_sqrt, detector_pixel, pixel_weight, count,
                             [weight, rms_amplitude](float& re, float& im, float m, float pw) {
                               return amplitude_element(re, im, m, pw, weight, rms_amplitude);
                             });
}

PTYPILOT_CPU_CLONES
void portable::accumulate_phase_gradient(const std::complex<float>* exit_wave,
                                         const std::complex<float>* back, int n, int top, int left,
                                         float* gradient, int gradient_cols) {
  for (int i = 0; i < n; ++i) {
    const float* er = reinterpret_cast<const float*>(exit_wave + std::size_t(i) * n);
    const float* br = reinterpret_cast<const float*>(back + std::size_t(i) * n);
    float* gr = gradient + std::size_t(top + i) * gradient_cols + left;
#pragma omp simd
    for (int j = 0; j < n; ++j) gr[j] += 2.0f * (er[2 * j] * br[2 * j + 1] - er[2 * j + 1] * br[2 * j]);
  }
}

void prior_step(const PriorStep& step, int threads) {
  const int rows = step.rows, cols = step.cols;
  with_prior_flags(step, [&](auto dark, auto tv, auto sparse) {
    constexpr bool kDark = decltype(dark)::value, kTv = decltype(tv)::value,
                   kSparse = decltype(sparse)::value;
#pragma omp parallel for num_threads(threads) schedule(static)
    for (int r = 0; r < rows; ++r) {
      float* row = step.out + long(r) * cols;
      // The edge pixels clamp their neighbours; the others need not.
      const bool interior_row = r > 0 && r + 1 < rows;
      const int first = interior_row ? 1 : cols, last = interior_row ? cols - 1 : cols;
      for (int c = 0; c < std::min(first, cols); ++c)
        row[c] = prior_value_with<kDark, kTv, kSparse>(step, r, c);
      for (int c = first; c < last; ++c)
        row[c] = prior_value_with<kDark, kTv, kSparse, true>(step, r, c);
      for (int c = std::max(last, first); c < cols; ++c)
        row[c] = prior_value_with<kDark, kTv, kSparse>(step, r, c);
    }
  });
}

bool avx2_loops_available() {
#if PTYPILOT_CPU_AVX2_LOOPS
  static const bool available = __builtin_cpu_supports("avx2");
  return available;
#else
  return false;
#endif
}

double intensity_residual(std::complex<float>* psi, const float* measured, std::size_t count,
                          float weight) {
#if PTYPILOT_CPU_AVX2_LOOPS
  if (avx2_loops_available()) return avx2::intensity_residual(psi, measured, count, weight);
#endif
  return portable::intensity_residual(psi, measured, count, weight);
}

double amplitude_residual(std::complex<float>* psi, const float* measured_sqrt, std::size_t count,
                          float weight, float rms_amplitude) {
#if PTYPILOT_CPU_AVX2_LOOPS
  if (avx2_loops_available())
    return avx2::amplitude_residual(psi, measured_sqrt, count, weight, rms_amplitude);
#endif
  return portable::amplitude_residual(psi, measured_sqrt, count, weight, rms_amplitude);
}

double intensity_residual_weighted(std::complex<float>* psi, const float* measured,
                                   const int* detector_pixel, const float* pixel_weight,
                                   std::size_t count, float weight) {
#if PTYPILOT_CPU_AVX2_LOOPS
  if (avx2_loops_available())
    return avx2::intensity_residual_weighted(psi, measured, detector_pixel, pixel_weight, count,
                                             weight);
#endif
  return portable::intensity_residual_weighted(psi, measured, detector_pixel, pixel_weight, count,
                                               weight);
}

double amplitude_residual_weighted(std::complex<float>* psi, const float* measured_sqrt,
                                   const int* detector_pixel, const float* pixel_weight,
                                   std::size_t count, float weight, float rms_amplitude) {
#if PTYPILOT_CPU_AVX2_LOOPS
  if (avx2_loops_available())
    return avx2::amplitude_residual_weighted(psi, measured_sqrt, detector_pixel, pixel_weight,
                                             count, weight, rms_amplitude);
#endif
  return portable::amplitude_residual_weighted(psi, measured_sqrt, detector_pixel, pixel_weight,
                                               count, weight, rms_amplitude);
}

void accumulate_phase_gradient(const std::complex<float>* exit_wave, const std::complex<float>* back,
                               int n, int top, int left, float* gradient, int gradient_cols) {
#if PTYPILOT_CPU_AVX2_LOOPS
  if (avx2_loops_available())
    return avx2::accumulate_phase_gradient(exit_wave, back, n, top, left, gradient, gradient_cols);
#endif
  portable::accumulate_phase_gradient(exit_wave, back, n, top, left, gradient, gradient_cols);
}

}  // namespace ptypilot::cpu
