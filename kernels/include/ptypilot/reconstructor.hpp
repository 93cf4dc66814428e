// The Reconstructor interface: update the potential V(r) from the frames of each completed
// sub-sequence, warm-started from the current estimate.
//
// Loss (paper eq. 2), with I_p the forward model of forward_model.hpp and the probe scaled so
// that its intensity equals the mean counts per pattern:
//   intensity:  L(V) = 1/P sum_p || I_p(V) - J_p ||^2
//   amplitude:  L(V) = 1/P sum_p || sqrt(I_p(V)) - sqrt(J_p) ||^2   (more robust at low dose)
// The norms run over the window's far field, each element's residual weighted by its detector
// weight (detector.hpp): elements no detector pixel measured (a detector smaller than the
// window: probe.detector_px) or masked out (detector_mask) are left free.
//
// Step. Plain gradient descent with a diagonal preconditioner, the normalised illumination:
//   V <- V - step_size * (P/2) * dL/dV / (W(r) + regularization * max W) * s
//   W(r) = sum_p |psi_p(r - R_p)|^2,  s = 1 (amplitude) or 1 / max_k mean_p J_p (intensity).
// For the amplitude loss, step_size = 1 is the parallel form of a PIE update (every exit wave
// projected onto its measured modulus, the object changes averaged over the overlap). The
// intensity-loss gradient is about 4 I times the amplitude one; 1 / (4 I) at the brightest pixel
// would be the safe bound, but most pixels are far dimmer, and s = 1 / I_max converges four
// times faster and was measured stable up to step_size = 2 on mos2-paper and graphene-small.
// Regions that no probe reaches (W = 0) stay at their warm-start value.
//
// Priors (PriorConfig). Sparse, uneven scans leave V under-determined between the positions;
// plain descent fills those gaps with whatever the probe tails and the noise suggest. After each
// step the priors act on V as one more operator (prior_step.hpp, the same element function on
// both backends), in this order:
//   dark smoothing   V += dark_smoothing * (1 - W / max W) * laplacian(V): diffusion where
//                    few electrons went, none where the data decide;
//   total variation  V += total_variation * div(grad V / |grad V|_eps): one explicit step of
//                    the TV flow (eps = kTotalVariationEpsilon rad);
//   sparsity         V <- sign(V) max(|V| - sparsity, 0): the soft threshold, the proximal step
//                    of sparsity * |V|_1 (atoms on vacuum are few bright pixels). Noise that a
//                    step adds by less than the threshold is removed each step instead of
//                    accumulating, which stops the over-fitting of noisy, super-resolved data
//                    (the paper's detector geometry, README) as the iterations go on;
//   positivity       V <- max(V, 0): the projected potential of a weak-phase specimen is
//                    positive, and vacuum is its zero (SSIM and the policy see V mean-free,
//                    so the offset costs nothing).
// The neighbour reads of the first two are clamped at the object's border (zero flux).
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "ptypilot/image.hpp"
#include "ptypilot/optics.hpp"
#include "ptypilot/scan_geometry.hpp"
#include "ptypilot/status.hpp"

namespace ptypilot {

enum class Loss { kIntensity, kAmplitude };
Loss parse_loss(std::string_view name);  // "intensity" | "amplitude"; throws otherwise

// The explicit steps are stable below these: diffusion on a 4-neighbour Laplacian needs a
// weight of at most 1/4, and the TV flow is that diffusion with weight total_variation / eps
// where V is flat (|grad V| << eps), so it needs total_variation <= eps / 4. Above it, the
// rounding of flat regions grows from step to step.
inline constexpr double kMaxDarkSmoothing = 0.25;
inline constexpr float kTotalVariationEpsilon = 0.02f;  // rad per pixel
inline constexpr double kMaxTotalVariation = kTotalVariationEpsilon / 4.0;
// A threshold per step beyond a tenth of a radian would erase a weak-phase specimen's atoms
// (MoS2's reach about 1 rad) within a few steps; the useful values are thousandths.
inline constexpr double kMaxSparsity = 0.1;

struct PriorConfig {
  bool positivity = true;
  double dark_smoothing = 0.0;   // 0 .. kMaxDarkSmoothing
  double total_variation = 0.0;  // 0 .. kMaxTotalVariation (0.005)
  double sparsity = 0.0;         // 0 .. kMaxSparsity, rad per step
  bool any() const {
    return positivity || dark_smoothing > 0 || total_variation > 0 || sparsity > 0;
  }
};

struct ReconstructorConfig {
  std::string backend = "auto";  // auto | cpu | cuda (choose_backend)
  ProbeConfig probe;
  ObjectGrid object;
  Loss loss = Loss::kIntensity;
  double step_size = 1.0;
  double regularization = 0.05;
  int threads = 0;  // CPU: 0 is every core OpenMP reports
  int batch = 16;   // CPU: patterns per FFTW batch; 8-32 keeps a batch in L2 (CUDA: all in one)
  PriorConfig priors;
  // A weight per detector pixel (probe.detector_side_px()^2, row-major, the frames' layout):
  // 0 leaves that pixel out of the loss (dead, hot, or beyond a beam stop), 1 keeps it. Empty:
  // every pixel 1. Window elements beyond a detector smaller than the window are always left
  // out (detector.hpp).
  std::vector<float> detector_mask;
  // The scan's rotation against the detector the frames come from, left to the positions
  // (scan_rotation.hpp): non-zero, make_reconstructor reconstructs on a grid aligned with the
  // detector at turned positions and turns the potential back onto `object` (scan axes).
  double scan_rotation_deg = 0.0;
  // The frames the session expects (its position budget; 0: unknown). Storage for that many,
  // on the host and the device, and the device's FFT plans, are made at construction, so that
  // adding frames on the decision path neither copies what is stored nor plans. More frames
  // than this still work: storage grows as needed.
  int expected_frames = 0;
};

// One diffraction pattern, detector_side_px()^2 counts, row-major, unshifted (detector.hpp).
struct Frame {
  std::uint64_t id = 0;
  Vec2 position_A;
  std::span<const float> counts;
};

struct Potential {
  RealImage phase_rad;
  ObjectGrid grid;
  std::size_t frames = 0;
  int iterations = 0;                // total gradient steps so far
  std::vector<double> loss_history;  // loss before each step
};

class Reconstructor {
 public:
  virtual ~Reconstructor() = default;
  // Validates and stores the frames. A bad frame (wrong size, NaN, negative counts, position
  // off the object) rejects the whole call, names the frame, and stores nothing.
  virtual Status add_frames(std::span<const Frame> frames) = 0;
  // Runs gradient steps over every frame stored so far, starting from the current V.
  virtual Status iterate(int iterations) = 0;
  virtual Potential snapshot() const = 0;
  // Warm start: replaces V (same shape as the object grid). The frames stay.
  virtual Status set_potential(const RealImage& phase_rad) = 0;
  virtual std::string_view backend() const = 0;
  // Replaces ReconstructorConfig::detector_mask (detector_px^2 weights, 0: free; empty: all 1)
  // while no frame is stored: a detector's own bad-pixel mask arrives with its series header,
  // after the reconstructor is made. kFailedPrecondition once frames are stored,
  // kInvalidArgument for a mask of another size or a bad weight; kUnavailable where the backend
  // fixes its mask at construction (CUDA, whose weights are uploaded once).
  virtual Status set_detector_mask(std::vector<float> mask) {
    (void)mask;
    return {StatusCode::kUnavailable,
            std::string(backend()) + " reconstructor: the detector mask is fixed when it is made"};
  }
};

// The backend make_reconstructor builds for a requested one, and why, for the caller's log:
// "auto" is CUDA when it was built and a device exists, else CPU, and the reason then says
// which was missing (cuda_support.hpp). Throws std::invalid_argument for an unknown name, and
// std::runtime_error for "cuda" where there is none, naming why (not built, or
// cudaGetDeviceCount's error).
struct BackendChoice {
  std::string backend;  // cpu | cuda
  std::string reason;
};
BackendChoice choose_backend(std::string_view requested);

// Builds the backend choose_backend picks. Throws as choose_backend does, and
// std::invalid_argument for a bad config.
std::unique_ptr<Reconstructor> make_reconstructor(const ReconstructorConfig& config);

}  // namespace ptypilot
