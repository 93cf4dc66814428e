#include "cpu_loops.hpp"

#include "amplitude_gradient.hpp"

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

PTYPILOT_CPU_CLONES
double intensity_residual(std::complex<float>* psi, const float* measured, std::size_t count,
                          float weight) {
  float* w = reinterpret_cast<float*>(psi);
  // Partial sums per block of 256 keep float accumulation error far below the loss' noise.
  double total = 0.0;
  for (std::size_t start = 0; start < count; start += 256) {
    const std::size_t end = std::min(count, start + 256);
    float sum = 0.0f;
#pragma omp simd reduction(+ : sum)
    for (std::size_t k = start; k < end; ++k) {
      const float re = w[2 * k], im = w[2 * k + 1];
      const float r = re * re + im * im - measured[k];
      sum += r * r;
      w[2 * k] = weight * r * re;
      w[2 * k + 1] = weight * r * im;
    }
    total += sum;
  }
  return total;
}

PTYPILOT_CPU_CLONES
double amplitude_residual(std::complex<float>* psi, const float* measured_sqrt, std::size_t count,
                          float weight, float rms_amplitude) {
  float* w = reinterpret_cast<float*>(psi);
  double total = 0.0;
  for (std::size_t start = 0; start < count; start += 256) {
    const std::size_t end = std::min(count, start + 256);
    float sum = 0.0f;
#pragma omp simd reduction(+ : sum)
    for (std::size_t k = start; k < end; ++k) {
      const float re = w[2 * k], im = w[2 * k + 1];
      const float a = std::sqrt(re * re + im * im);
      const float r = a - measured_sqrt[k];
      sum += r * r;
      // Where the model has no amplitude the gradient has no direction; it is zero there
      // (amplitude_gradient.hpp: below a floor far above the FFT's rounding).
      const float f = amplitude_gradient_factor(a, r, weight, rms_amplitude);
      w[2 * k] = f * re;
      w[2 * k + 1] = f * im;
    }
    total += sum;
  }
  return total;
}

PTYPILOT_CPU_CLONES
void accumulate_phase_gradient(const std::complex<float>* exit_wave, const std::complex<float>* back,
                               int n, int top, int left, float* gradient, int gradient_cols) {
  for (int i = 0; i < n; ++i) {
    const float* er = reinterpret_cast<const float*>(exit_wave + std::size_t(i) * n);
    const float* br = reinterpret_cast<const float*>(back + std::size_t(i) * n);
    float* gr = gradient + std::size_t(top + i) * gradient_cols + left;
#pragma omp simd
    for (int j = 0; j < n; ++j) gr[j] += 2.0f * (er[2 * j] * br[2 * j + 1] - er[2 * j + 1] * br[2 * j]);
  }
}

}  // namespace ptypilot::cpu
