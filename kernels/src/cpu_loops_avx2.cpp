// AVX2 versions of the residuals and the gradient scatter (cpu_loops.hpp), which compute every
// element with the same IEEE operations, in the same order, as the portable loops: the same
// far field and gradient bit for bit (a test checks it), only faster.
//
// Why by hand: the far field is stored as interleaved (re, im) pairs, and the compiler's
// vectorisation of the portable loops splits and re-interleaves them with a dozen shuffles per
// eight elements, which cost as much as the arithmetic. Here |Psi|^2 comes from one horizontal
// add of the squares, whose lane order (0 1 4 5 | 2 3 6 7) the measured values are permuted to
// match, and each factor is spread back over its (re, im) pair with one in-lane shuffle. On a
// 2-core AMD EPYC (Zen 3) a 64 x 64 pattern's amplitude residual took 2.2 us instead of 3.9 us,
// the gradient scatter 1.0 us instead of 2.6 us, both on data in L1.
//
// The functions carry target("avx2") and not "fma": without FMA the compiler cannot contract a
// product and a sum into one rounding, which would change the bits.
#include "cpu_loops.hpp"

#include "amplitude_gradient.hpp"

#if PTYPILOT_CPU_AVX2_LOOPS

#include <immintrin.h>

#include <algorithm>

namespace ptypilot::cpu::avx2 {
namespace {

#define PTYPILOT_AVX2 __attribute__((target("avx2")))

// Swaps the middle two 64-bit quarters: turns the hadd order 0 1 4 5 | 2 3 6 7 into 0..7 and back.
PTYPILOT_AVX2 inline __m256 swap_middle_pairs(__m256 x) {
  return _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(x), 0xD8));
}

// |Psi|^2 of the 8 complex elements at w (16 floats), in hadd order; v0, v1 keep the elements.
PTYPILOT_AVX2 inline __m256 squared_magnitudes(const float* w, __m256* v0, __m256* v1) {
  *v0 = _mm256_loadu_ps(w);
  *v1 = _mm256_loadu_ps(w + 8);
  return _mm256_hadd_ps(_mm256_mul_ps(*v0, *v0), _mm256_mul_ps(*v1, *v1));
}

// Psi *= f per element, for factors f in hadd order.
PTYPILOT_AVX2 inline void scale_pairs(float* w, __m256 v0, __m256 v1, __m256 f) {
  _mm256_storeu_ps(w, _mm256_mul_ps(v0, _mm256_permute_ps(f, 0x50)));      // f0 f0 f1 f1 | f2 f2 f3 f3
  _mm256_storeu_ps(w + 8, _mm256_mul_ps(v1, _mm256_permute_ps(f, 0xFA)));  // f4 f4 f5 f5 | f6 f6 f7 f7
}

// The lanes summed in a fixed order, so that the loss does not depend on the data's alignment.
PTYPILOT_AVX2 inline float sum_lanes(__m256 x) {
  alignas(32) float lanes[8];
  _mm256_store_ps(lanes, x);
  float sum = lanes[0];
  for (int l = 1; l < 8; ++l) sum += lanes[l];
  return sum;
}

// measured[pixel[k]] for the 8 elements from `pixel`, in hadd order.
PTYPILOT_AVX2 inline __m256 measured_through_pixels(const float* measured, const int* pixel) {
  const __m256i indices = _mm256_permute4x64_epi64(
      _mm256_loadu_si256(reinterpret_cast<const __m256i*>(pixel)), 0xD8);
  return _mm256_i32gather_ps(measured, indices, 4);
}

// amplitude_gradient_factor (amplitude_gradient.hpp) for 8 elements.
struct AmplitudeConstants {
  __m256 weight, floor_squared, smallest, zero;
  PTYPILOT_AVX2 AmplitudeConstants(float w, float rms_amplitude) {
    const float floor = kAmplitudeFloor * rms_amplitude;
    weight = _mm256_set1_ps(w);
    floor_squared = _mm256_set1_ps(floor * floor);
    smallest = _mm256_set1_ps(1.401298464e-45f);
    zero = _mm256_setzero_ps();
  }
};

PTYPILOT_AVX2 inline __m256 amplitude_factor(const AmplitudeConstants& c, __m256 a, __m256 r) {
  const __m256 d = _mm256_add_ps(_mm256_mul_ps(a, a), c.floor_squared);
  // The clamp d > smallest ? d : smallest; max_ps returns its second operand where d is NaN,
  // as that comparison, false there, does.
  const __m256 quotient =
      _mm256_div_ps(_mm256_mul_ps(_mm256_mul_ps(c.weight, r), a), _mm256_max_ps(d, c.smallest));
  return _mm256_and_ps(quotient, _mm256_cmp_ps(d, c.zero, _CMP_GT_OQ));
}

// The loop the four residuals share, in the portable loops' blocks of 256 elements: in each
// block, eight elements at a time by `eight(k)`, then the rest one by one by `one(k)`, both of
// which write dL/dPsi* in place and return the residuals r; the block's r^2 are summed in float
// and added to a double.
template <typename Eight, typename One>
PTYPILOT_AVX2 inline double residual_blocks(std::size_t count, Eight eight, One one) {
  constexpr std::size_t kBlock = 256;
  double total = 0.0;
  for (std::size_t start = 0; start < count; start += kBlock) {
    const std::size_t end = std::min(count, start + kBlock);
    __m256 squares = _mm256_setzero_ps();
    std::size_t k = start;
    for (; k + 8 <= end; k += 8) {
      const __m256 r = eight(k);
      squares = _mm256_add_ps(squares, _mm256_mul_ps(r, r));
    }
    float sum = sum_lanes(squares);
    for (; k < end; ++k) {
      const float r = one(k);
      sum += r * r;
    }
    total += sum;
  }
  return total;
}

}  // namespace

// The lambdas carry the target too: they do not inherit it from the function around them.

PTYPILOT_AVX2
double intensity_residual(std::complex<float>* psi, const float* measured, std::size_t count,
                          float weight) {
  float* w = reinterpret_cast<float*>(psi);
  const __m256 weights = _mm256_set1_ps(weight);
  return residual_blocks(
      count,
      [&](std::size_t k) PTYPILOT_AVX2 {
        __m256 v0, v1;
        const __m256 s = squared_magnitudes(w + 2 * k, &v0, &v1);
        const __m256 r = _mm256_sub_ps(s, swap_middle_pairs(_mm256_loadu_ps(measured + k)));
        scale_pairs(w + 2 * k, v0, v1, _mm256_mul_ps(weights, r));
        return r;
      },
      [&](std::size_t k) {
        return intensity_element(w[2 * k], w[2 * k + 1], measured[k], 1.0f, weight);
      });
}

PTYPILOT_AVX2
double amplitude_residual(std::complex<float>* psi, const float* measured_sqrt, std::size_t count,
                          float weight, float rms_amplitude) {
  float* w = reinterpret_cast<float*>(psi);
  const AmplitudeConstants c(weight, rms_amplitude);
  return residual_blocks(
      count,
      [&](std::size_t k) PTYPILOT_AVX2 {
        __m256 v0, v1;
        const __m256 a = _mm256_sqrt_ps(squared_magnitudes(w + 2 * k, &v0, &v1));
        const __m256 r = _mm256_sub_ps(a, swap_middle_pairs(_mm256_loadu_ps(measured_sqrt + k)));
        scale_pairs(w + 2 * k, v0, v1, amplitude_factor(c, a, r));
        return r;
      },
      [&](std::size_t k) {
        return amplitude_element(w[2 * k], w[2 * k + 1], measured_sqrt[k], 1.0f, weight,
                                 rms_amplitude);
      });
}

// The weighted loops read each element's measured value through its detector pixel (a gather,
// its indices in hadd order) and multiply by its weight w as the element functions do; with
// w = 1 everywhere they give the unweighted loops' values and sums bit for bit.
PTYPILOT_AVX2
double intensity_residual_weighted(std::complex<float>* psi, const float* measured,
                                   const int* detector_pixel, const float* pixel_weight,
                                   std::size_t count, float weight) {
  float* w = reinterpret_cast<float*>(psi);
  const __m256 weights = _mm256_set1_ps(weight);
  return residual_blocks(
      count,
      [&](std::size_t k) PTYPILOT_AVX2 {
        __m256 v0, v1;
        const __m256 s = squared_magnitudes(w + 2 * k, &v0, &v1);
        const __m256 m = measured_through_pixels(measured, detector_pixel + k);
        const __m256 pw = swap_middle_pairs(_mm256_loadu_ps(pixel_weight + k));
        const __m256 r = _mm256_mul_ps(pw, _mm256_sub_ps(s, m));
        scale_pairs(w + 2 * k, v0, v1, _mm256_mul_ps(weights, _mm256_mul_ps(pw, r)));
        return r;
      },
      [&](std::size_t k) {
        return intensity_element(w[2 * k], w[2 * k + 1], measured[detector_pixel[k]],
                                 pixel_weight[k], weight);
      });
}

PTYPILOT_AVX2
double amplitude_residual_weighted(std::complex<float>* psi, const float* measured_sqrt,
                                   const int* detector_pixel, const float* pixel_weight,
                                   std::size_t count, float weight, float rms_amplitude) {
  float* w = reinterpret_cast<float*>(psi);
  const AmplitudeConstants c(weight, rms_amplitude);
  return residual_blocks(
      count,
      [&](std::size_t k) PTYPILOT_AVX2 {
        __m256 v0, v1;
        const __m256 a = _mm256_sqrt_ps(squared_magnitudes(w + 2 * k, &v0, &v1));
        const __m256 m = measured_through_pixels(measured_sqrt, detector_pixel + k);
        const __m256 pw = swap_middle_pairs(_mm256_loadu_ps(pixel_weight + k));
        const __m256 r = _mm256_mul_ps(pw, _mm256_sub_ps(a, m));
        scale_pairs(w + 2 * k, v0, v1, amplitude_factor(c, a, _mm256_mul_ps(pw, r)));
        return r;
      },
      [&](std::size_t k) {
        return amplitude_element(w[2 * k], w[2 * k + 1], measured_sqrt[detector_pixel[k]],
                                 pixel_weight[k], weight, rms_amplitude);
      });
}

PTYPILOT_AVX2
void accumulate_phase_gradient(const std::complex<float>* exit_wave, const std::complex<float>* back,
                               int n, int top, int left, float* gradient, int gradient_cols) {
  const __m256 two = _mm256_set1_ps(2.0f);
  for (int i = 0; i < n; ++i) {
    const float* er = reinterpret_cast<const float*>(exit_wave + std::size_t(i) * n);
    const float* br = reinterpret_cast<const float*>(back + std::size_t(i) * n);
    float* gr = gradient + std::size_t(top + i) * gradient_cols + left;
    int j = 0;
    for (; j + 8 <= n; j += 8) {
      // (re_e * im_b, im_e * re_b) per element, then their difference by a horizontal subtract.
      const __m256 p0 = _mm256_mul_ps(_mm256_loadu_ps(er + 2 * j),
                                      _mm256_permute_ps(_mm256_loadu_ps(br + 2 * j), 0xB1));
      const __m256 p1 = _mm256_mul_ps(_mm256_loadu_ps(er + 2 * j + 8),
                                      _mm256_permute_ps(_mm256_loadu_ps(br + 2 * j + 8), 0xB1));
      const __m256 term = _mm256_mul_ps(two, swap_middle_pairs(_mm256_hsub_ps(p0, p1)));
      _mm256_storeu_ps(gr + j, _mm256_add_ps(_mm256_loadu_ps(gr + j), term));
    }
    for (; j < n; ++j) gr[j] += 2.0f * (er[2 * j] * br[2 * j + 1] - er[2 * j + 1] * br[2 * j]);
  }
}

}  // namespace ptypilot::cpu::avx2

#endif  // PTYPILOT_CPU_AVX2_LOOPS
