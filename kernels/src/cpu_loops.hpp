// The element-wise loops of the CPU forward and backward passes, kept apart so each can be
// compiled for several instruction sets (target_clones: the loader picks AVX-512, AVX2 or the
// baseline at run time) without building the whole project for one machine.
//
// They are written in real arithmetic on interleaved (re, im) floats: std::complex
// multiplication is not vectorised without -ffast-math because of its NaN recovery path, and
// -ffast-math would also remove the NaN checks on incoming frames.
#pragma once

#include <complex>
#include <cstddef>

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) && !defined(__CUDACC__)
#define PTYPILOT_CPU_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define PTYPILOT_CPU_CLONES
#endif

// The residuals and the gradient scatter also have hand-written AVX2 versions
// (cpu_loops_avx2.cpp), which the functions below use where the processor has AVX2.
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__CUDACC__)
#define PTYPILOT_CPU_AVX2_LOOPS 1
#else
#define PTYPILOT_CPU_AVX2_LOOPS 0
#endif

namespace ptypilot {
struct PriorStep;
}  // namespace ptypilot

namespace ptypilot::cpu {

// out[i, j] = scale * probe[i, j] * t[top + i, left + j] for an n x n window of t (t_cols wide).
void exit_wave(const std::complex<float>* t, int t_cols, int top, int left,
               const std::complex<float>* probe, int n, float scale, std::complex<float>* out);

// Far field Psi -> dL/dPsi* in place for L = sum (|Psi|^2 - J)^2 * weight / 2; returns
// sum (|Psi|^2 - J)^2.
double intensity_residual(std::complex<float>* psi, const float* measured, std::size_t count,
                          float weight);

// The same for L = sum (|Psi| - sqrt J)^2 * weight; `measured` holds sqrt J, and rms_amplitude
// is the far field's RMS amplitude, the scale of the floor of amplitude_gradient.hpp.
double amplitude_residual(std::complex<float>* psi, const float* measured_sqrt, std::size_t count,
                          float weight, float rms_amplitude);

// The same two with a weight w per far-field element (detector.hpp, amplitude_gradient.hpp):
// element k reads measured[detector_pixel[k]] (one detector pattern) and weighs its residual by
// pixel_weight[k].
double intensity_residual_weighted(std::complex<float>* psi, const float* measured,
                                   const int* detector_pixel, const float* pixel_weight,
                                   std::size_t count, float weight);
double amplitude_residual_weighted(std::complex<float>* psi, const float* measured_sqrt,
                                   const int* detector_pixel, const float* pixel_weight,
                                   std::size_t count, float weight, float rms_amplitude);

// gradient[top + i, left + j] += 2 Im(conj(e) * back) over an n x n window of a
// gradient_cols-wide image, for the exit wave e and the back-propagated dL/de* `back`.
void accumulate_phase_gradient(const std::complex<float>* exit_wave, const std::complex<float>* back,
                               int n, int top, int left, float* gradient, int gradient_cols);

// The priors' step (prior_step.hpp) over the whole image, step.phase -> step.out, on `threads`
// OpenMP threads: prior_value_at's values bit for bit, computed by row and column with the priors
// that are off compiled out and the interior's neighbours unclamped, which lets positivity alone
// and the dark smoothing vectorise.
void prior_step(const PriorStep& step, int threads);

// The loops the functions above run where there is no AVX2, written for the compiler to
// vectorise; the AVX2 versions must give their far field and gradient bit for bit.
namespace portable {
double intensity_residual(std::complex<float>* psi, const float* measured, std::size_t count,
                          float weight);
double amplitude_residual(std::complex<float>* psi, const float* measured_sqrt, std::size_t count,
                          float weight, float rms_amplitude);
double intensity_residual_weighted(std::complex<float>* psi, const float* measured,
                                   const int* detector_pixel, const float* pixel_weight,
                                   std::size_t count, float weight);
double amplitude_residual_weighted(std::complex<float>* psi, const float* measured_sqrt,
                                   const int* detector_pixel, const float* pixel_weight,
                                   std::size_t count, float weight, float rms_amplitude);
void accumulate_phase_gradient(const std::complex<float>* exit_wave, const std::complex<float>* back,
                               int n, int top, int left, float* gradient, int gradient_cols);
}  // namespace portable

// Whether this processor runs the AVX2 versions.
bool avx2_loops_available();

#if PTYPILOT_CPU_AVX2_LOOPS
namespace avx2 {
double intensity_residual(std::complex<float>* psi, const float* measured, std::size_t count,
                          float weight);
double amplitude_residual(std::complex<float>* psi, const float* measured_sqrt, std::size_t count,
                          float weight, float rms_amplitude);
double intensity_residual_weighted(std::complex<float>* psi, const float* measured,
                                   const int* detector_pixel, const float* pixel_weight,
                                   std::size_t count, float weight);
double amplitude_residual_weighted(std::complex<float>* psi, const float* measured_sqrt,
                                   const int* detector_pixel, const float* pixel_weight,
                                   std::size_t count, float weight, float rms_amplitude);
void accumulate_phase_gradient(const std::complex<float>* exit_wave, const std::complex<float>* back,
                               int n, int top, int left, float* gradient, int gradient_cols);
}  // namespace avx2
#endif

}  // namespace ptypilot::cpu
