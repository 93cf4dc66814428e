// Image-quality metrics. Both SSIM and FRC are evaluated in double precision: they are computed
// once per reconstruction, and the scan-strategy comparison must agree with the skimage/numpy
// numbers used in the paper's analysis scripts, so precision matters more than speed here.
#include "ptypilot/metrics.hpp"

#include <fftw3.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <complex>
#include <cstddef>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <string>
#include <vector>

namespace ptypilot {
namespace {

// skimage's Wang et al. settings: sigma 1.5 truncated at 3.5 sigma gives an 11-tap window.
constexpr double kSsimSigma = 1.5;
constexpr double kSsimTruncate = 3.5;
constexpr int kSsimRadius = static_cast<int>(kSsimTruncate * kSsimSigma + 0.5);  // as ndimage
static_assert(kSsimRadius == kSsimBorderPx, "metrics.hpp documents the border");
constexpr int kSsimWindow = 2 * kSsimRadius + 1;
constexpr double kSsimK1 = 0.01;
constexpr double kSsimK2 = 0.03;

using SsimKernel = std::array<double, kSsimWindow>;

// Same construction (and normalisation order) as scipy.ndimage._gaussian_kernel1d.
SsimKernel ssim_kernel() {
  SsimKernel w{};
  const double sigma2 = kSsimSigma * kSsimSigma;
  double sum = 0.0;
  for (int i = 0; i < kSsimWindow; ++i) {
    const double x = i - kSsimRadius;
    w[i] = std::exp(-0.5 / sigma2 * x * x);
    sum += w[i];
  }
  for (double& v : w) v /= sum;
  return w;
}

void require_finite(const RealImage& image, const char* who, const char* name) {
  for (float v : image.span()) {
    if (!std::isfinite(v)) {
      throw std::invalid_argument(std::string(who) + ": image " + name +
                                  " contains NaN or infinite values");
    }
  }
}

void require_same_shape(const RealImage& a, const RealImage& b, const char* who) {
  if (a.rows() != b.rows() || a.cols() != b.cols()) {
    throw std::invalid_argument(std::string(who) + ": shape mismatch, " + std::to_string(a.rows()) +
                                "x" + std::to_string(a.cols()) + " vs " + std::to_string(b.rows()) +
                                "x" + std::to_string(b.cols()));
  }
}

// FFTW's planner is not thread-safe (only fftw_execute is), and the daemon may score several
// reconstructions concurrently. The kernels' own FFTs use the separate single-precision library,
// whose planner state is independent, so guarding the double planner here is sufficient.
std::mutex& fftw_planner_mutex() {
  static std::mutex mutex;
  return mutex;
}

struct FftwFree {
  void operator()(void* p) const { fftw_free(p); }
};
template <typename T>
using FftwBuffer = std::unique_ptr<T[], FftwFree>;

class R2cPlan {
 public:
  R2cPlan(int n, double* in, fftw_complex* out) {
    std::lock_guard lock(fftw_planner_mutex());
    plan_ = fftw_plan_dft_r2c_2d(n, n, in, out, FFTW_ESTIMATE);
    if (plan_ == nullptr) throw std::runtime_error("frc: FFTW could not create a plan");
  }
  ~R2cPlan() {
    std::lock_guard lock(fftw_planner_mutex());
    fftw_destroy_plan(plan_);
  }
  R2cPlan(const R2cPlan&) = delete;
  R2cPlan& operator=(const R2cPlan&) = delete;

  // New-array execution is allowed because every buffer comes from fftw_alloc_*, so alignment
  // matches the planning buffers.
  void execute(double* in, fftw_complex* out) const { fftw_execute_dft_r2c(plan_, in, out); }

 private:
  fftw_plan plan_ = nullptr;
};

double half_bit_threshold(long n) {
  const double root = std::sqrt(static_cast<double>(n));
  return (0.2071 + 1.9102 / root) / (1.2071 + 0.9102 / root);
}

}  // namespace

Image<double> ssim_map(const RealImage& a, const RealImage& b, double data_range) {
  require_same_shape(a, b, "ssim");
  if (a.rows() < kSsimWindow || a.cols() < kSsimWindow) {
    throw std::invalid_argument("ssim: images must be at least " + std::to_string(kSsimWindow) +
                                "x" + std::to_string(kSsimWindow) + " (the Gaussian window), got " +
                                std::to_string(a.rows()) + "x" + std::to_string(a.cols()));
  }
  if (!std::isfinite(data_range) || data_range <= 0.0) {
    throw std::invalid_argument("ssim: data_range must be positive and finite, got " +
                                std::to_string(data_range));
  }
  require_finite(a, "ssim", "a");
  require_finite(b, "ssim", "b");

  const SsimKernel w = ssim_kernel();
  const int rows = a.rows();
  const int cols = a.cols();
  const int r = kSsimRadius;
  const double c1 = (kSsimK1 * data_range) * (kSsimK1 * data_range);
  const double c2 = (kSsimK2 * data_range) * (kSsimK2 * data_range);

  // skimage filters the whole image with reflected borders and then discards a border of
  // (win_size - 1) / 2 = radius pixels before averaging. Every retained output pixel only reads
  // inputs within the image, so the border mode never affects the result and it suffices to
  // evaluate the separable filter on the retained region. Streaming one output row at a time
  // keeps the work memory at O(cols) rather than five full double images.
  enum Field { kA, kB, kAA, kBB, kAB, kFields };
  std::array<std::vector<double>, kFields> col_pass;  // column-filtered row, all columns
  for (auto& v : col_pass) v.assign(static_cast<std::size_t>(cols), 0.0);

  Image<double> map(rows - 2 * r, cols - 2 * r);
  for (int i = r; i < rows - r; ++i) {
    for (auto& v : col_pass) std::fill(v.begin(), v.end(), 0.0);
    // ndimage filters axis 0 first, then axis 1; follow the same order.
    for (int k = 0; k < kSsimWindow; ++k) {
      const double wk = w[k];
      const float* pa = a.data() + static_cast<std::size_t>(i + k - r) * cols;
      const float* pb = b.data() + static_cast<std::size_t>(i + k - r) * cols;
      for (int j = 0; j < cols; ++j) {
        // Products of floats are exact in double, as in skimage for float64 inputs.
        const double x = pa[j];
        const double y = pb[j];
        col_pass[kA][j] += wk * x;
        col_pass[kB][j] += wk * y;
        col_pass[kAA][j] += wk * (x * x);
        col_pass[kBB][j] += wk * (y * y);
        col_pass[kAB][j] += wk * (x * y);
      }
    }
    for (int j = r; j < cols - r; ++j) {
      std::array<double, kFields> f{};
      for (int k = 0; k < kSsimWindow; ++k) {
        for (int field = 0; field < kFields; ++field) f[field] += w[k] * col_pass[field][j + k - r];
      }
      const double ux = f[kA];
      const double uy = f[kB];
      // Population (not sample) covariance, as Wang et al. and use_sample_covariance=False.
      const double vx = f[kAA] - ux * ux;
      const double vy = f[kBB] - uy * uy;
      const double vxy = f[kAB] - ux * uy;
      const double num = (2.0 * ux * uy + c1) * (2.0 * vxy + c2);
      const double den = (ux * ux + uy * uy + c1) * (vx + vy + c2);
      map(i - r, j - r) = num / den;
    }
  }
  return map;
}

double ssim(const RealImage& a, const RealImage& b, double data_range) {
  const Image<double> map = ssim_map(a, b, data_range);
  double sum = 0.0;
  for (double v : map.span()) sum += v;
  return sum / static_cast<double>(map.size());
}

FrcCurve frc(const RealImage& a, const RealImage& b, double pixel_A) {
  require_same_shape(a, b, "frc");
  if (a.rows() != a.cols()) {
    throw std::invalid_argument("frc: images must be square, got " + std::to_string(a.rows()) +
                                "x" + std::to_string(a.cols()));
  }
  if (a.empty()) throw std::invalid_argument("frc: images are empty");
  if (!std::isfinite(pixel_A) || pixel_A <= 0.0) {
    throw std::invalid_argument("frc: pixel_A must be positive and finite, got " +
                                std::to_string(pixel_A));
  }
  require_finite(a, "frc", "a");
  require_finite(b, "frc", "b");

  const int n = a.rows();
  const int half_cols = n / 2 + 1;  // r2c keeps kx = 0 .. n/2
  const std::size_t real_size = static_cast<std::size_t>(n) * n;
  const std::size_t spec_size = static_cast<std::size_t>(n) * half_cols;

  FftwBuffer<double> in(fftw_alloc_real(real_size));
  FftwBuffer<fftw_complex> fa(fftw_alloc_complex(spec_size));
  FftwBuffer<fftw_complex> fb(fftw_alloc_complex(spec_size));
  if (!in || !fa || !fb) throw std::bad_alloc();
  const R2cPlan plan(n, in.get(), fa.get());
  for (std::size_t i = 0; i < real_size; ++i) in[i] = a.data()[i];
  plan.execute(in.get(), fa.get());
  for (std::size_t i = 0; i < real_size; ++i) in[i] = b.data()[i];
  plan.execute(in.get(), fb.get());

  const int rings = n / 2 + 1;
  std::vector<double> cross(rings, 0.0);
  std::vector<double> power_a(rings, 0.0);
  std::vector<double> power_b(rings, 0.0);
  std::vector<long> count(rings, 0);

  for (int iy = 0; iy < n; ++iy) {
    // Signed frequency index as numpy.fft.fftfreq * n; only |k| matters for the ring.
    const long ky = iy <= n / 2 ? iy : iy - n;
    for (int ix = 0; ix < half_cols; ++ix) {
      const long kx = ix;
      // The r2c output holds one of each Hermitian pair (k, -k). Both members lie in the same
      // ring and contribute equal real parts, so interior columns stand for two pixels; the
      // kx = 0 column and, for even n, the kx = n/2 column contain their own mirrors.
      const int weight = (ix == 0 || (n % 2 == 0 && ix == n / 2)) ? 1 : 2;
      // |k|^2 is an integer, so |k| is never exactly half-integral: any rounding convention
      // (numpy's half-to-even included) gives the same ring.
      const long ring = std::lround(std::sqrt(static_cast<double>(ky * ky + kx * kx)));
      if (ring >= rings) continue;
      const std::size_t idx = static_cast<std::size_t>(iy) * half_cols + ix;
      const std::complex<double> za(fa[idx][0], fa[idx][1]);
      const std::complex<double> zb(fb[idx][0], fb[idx][1]);
      cross[ring] += weight * (za * std::conj(zb)).real();
      power_a[ring] += weight * std::norm(za);
      power_b[ring] += weight * std::norm(zb);
      count[ring] += weight;
    }
  }

  FrcCurve curve;
  curve.spatial_frequency_per_A.resize(rings);
  curve.correlation.resize(rings);
  curve.half_bit_threshold.resize(rings);
  curve.pixels_in_ring = count;
  curve.resolution_A = 2.0 * pixel_A;  // Nyquist, unless the curve drops below threshold
  bool crossed = false;
  for (int ring = 0; ring < rings; ++ring) {
    const double frequency = ring / (n * pixel_A);
    const double denominator = std::sqrt(power_a[ring] * power_b[ring]);
    const double correlation = denominator > 0.0 ? cross[ring] / denominator : 0.0;
    const double threshold = half_bit_threshold(count[ring]);
    curve.spatial_frequency_per_A[ring] = frequency;
    curve.correlation[ring] = correlation;
    curve.half_bit_threshold[ring] = threshold;
    // Ring 0 (DC) is skipped: its threshold is 1 and it carries no resolution information.
    if (!crossed && ring > 0 && correlation < threshold) {
      curve.resolution_A = 1.0 / frequency;
      crossed = true;
    }
  }
  return curve;
}

double q_ssim(double ssim_adaptive, double ssim_sparse) {
  if (!std::isfinite(ssim_adaptive) || !std::isfinite(ssim_sparse)) {
    throw std::invalid_argument("q_ssim: SSIM values must be finite");
  }
  if (ssim_sparse == 0.0) throw std::invalid_argument("q_ssim: sparse-grid SSIM is zero");
  return (ssim_adaptive - ssim_sparse) / ssim_sparse;
}

}  // namespace ptypilot
