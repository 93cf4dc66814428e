// Both losses' dL/dPsi* at one far-field element, shared by the CPU loops (cpu_loops.cpp) and
// the CUDA kernels' bodies (cuda/reconstruct_elements.hpp), so that both treat the elements
// where the model has no amplitude, and those no detector pixel measured, alike.
//
// Each element carries a weight w (detector.hpp): 1 where a detector pixel measured it, 0 where
// none did (beyond a detector smaller than the window, or a pixel masked out). It weighs the
// residual, r -> w r, so the loss is sum (w r)^2 and its gradient carries w^2: w = 0 leaves the
// model's far field there free (no term, no gradient), and w = 1 multiplies by one, which is
// exact, so that a window every pixel of which is measured gives the unweighted loss bit for bit.
//
// For L = weight * (|Psi| - sqrt J)^2, dL/dPsi* = weight * r * Psi / |Psi|, r = |Psi| - sqrt J:
// a term of size weight * |r| whose direction is Psi's phase alone. Where the exact far field is
// zero, its phase is nowhere: outside the band-limited probe's aperture at V = 0 (96 % of a
// 64 x 64 pattern on the mos2-paper optics) and wherever V is smooth, Psi is the FFT's rounding,
// about 1e-6 of the far field's RMS amplitude, yet the data there (sqrt J, dark-field electrons)
// is not. Dividing by that |Psi| gives each such element the full weight * sqrt J in the
// direction of the rounding: the first step from V = 0 then depended on which FFT algorithm ran
// (FFTW_MEASURE picks by timing, cuFFT is another) by up to 18 % of V's largest value, and a
// cut-off at 1e-20 never caught it. So the division is softened below a floor far above the
// rounding and far below any amplitude a detector sees:
//   dL/dPsi* = weight * r * Psi * |Psi| / (|Psi|^2 + floor^2),  floor = kAmplitudeFloor * RMS,
// continuous, the exact gradient wherever |Psi| >> floor, and zero where Psi is. The RMS of
// every pattern's far field is the probe scale, sqrt(intensity scale) / n (the probe is unit
// normalised and the object a phase), so the floor is an intensity of 1e-6 of the mean pixel's.
// A rounding error e in Psi now moves an element's term by at most about e / floor (1e-3) of
// weight * sqrt J, instead of all of it. The loss itself is unchanged.
#pragma once

#include <cmath>
#include <cstring>

#include "cuda/host_device.hpp"

namespace ptypilot {

inline constexpr float kAmplitudeFloor = 1e-3f;  // of the far field's RMS amplitude

// x where `kept`, +0 elsewhere, by masking the bits: no branch, so nothing that x's computation
// may raise (a division by a tiny number, say) has to be guarded.
PTYPILOT_HD float kept_or_zero(bool kept, float x) {
  unsigned bits;
  memcpy(&bits, &x, sizeof bits);
  bits &= kept ? ~0u : 0u;
  memcpy(&x, &bits, sizeof x);
  return x;
}

// dL/dPsi* = the returned factor * Psi, for |Psi| = a, r = a - sqrt J.
// Written without a branch, so that the CPU loops vectorise: from
// `d > 0 ? weight * r * a / d : 0` GCC kept the AVX2 loop scalar (it may not execute a division
// that the branch avoided: it could raise a floating-point exception), and that loop was a
// quarter of an iteration's time. The result is the branch's bit for bit: where d > 0 the same
// product is divided by the same d, and elsewhere (d = 0, also where a * a underflows, or NaN)
// the quotient, of a clamped denominator, is replaced by +0.
PTYPILOT_HD float amplitude_gradient_factor(float a, float r, float weight, float rms_amplitude) {
  constexpr float kSmallest = 1.401298464e-45f;  // the smallest positive (denormal) float
  const float floor = kAmplitudeFloor * rms_amplitude;
  const float d = a * a + floor * floor;
  return kept_or_zero(d > 0.0f, weight * r * a / (d > kSmallest ? d : kSmallest));
}

// Far field Psi = (re, im) -> dL/dPsi* in place for L = weight * (w (|Psi| - sqrt J))^2;
// returns the weighted residual w r, which the caller squares into its sum (as the loops did
// before weights, so that the sum's rounding is theirs).
PTYPILOT_HD float amplitude_element(float& re, float& im, float measured_sqrt, float w,
                                    float weight, float rms_amplitude) {
  const float a = sqrtf(re * re + im * im);
  const float r = w * (a - measured_sqrt);
  const float f = amplitude_gradient_factor(a, w * r, weight, rms_amplitude);
  re *= f;
  im *= f;
  return r;
}

// The same for L = weight / 2 * (w (|Psi|^2 - J))^2; returns w (|Psi|^2 - J).
PTYPILOT_HD float intensity_element(float& re, float& im, float measured, float w, float weight) {
  const float r = w * (re * re + im * im - measured);
  const float f = weight * (w * r);
  re *= f;
  im *= f;
  return r;
}

}  // namespace ptypilot
