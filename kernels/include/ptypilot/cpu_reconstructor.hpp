// CpuReconstructor: the Reconstructor on FFTW (fp32) and OpenMP threads.
//
// Each thread takes batches of patterns; per pattern it forms the exit wave, transforms it,
// turns the far field into the loss gradient with respect to the far field, transforms back and
// scatters 2 Im(conj(e) g) into the gradient image of the batch's slot (no atomics). A slot is a
// fixed run of batches, whichever thread takes it, and the slots are summed in order at the end
// of the iteration, so the result does not depend on the threads (up to 8 of them). The
// sub-pixel-shifted probes are computed once per position.
// The element-wise loops (src/cpu_loops.cpp) are compiled for AVX-512, AVX2 and baseline x86-64
// and picked at run time.
#pragma once

#include <complex>
#include <vector>

#include "ptypilot/fft.hpp"
#include "ptypilot/forward_model.hpp"
#include "ptypilot/frame_store.hpp"
#include "ptypilot/reconstructor.hpp"

namespace ptypilot {

class CpuReconstructor final : public Reconstructor {
 public:
  explicit CpuReconstructor(const ReconstructorConfig& config);

  Status add_frames(std::span<const Frame> frames) override;
  Status iterate(int iterations) override;
  Potential snapshot() const override;
  Status set_potential(const RealImage& phase_rad) override;
  std::string_view backend() const override { return "cpu"; }
  Status set_detector_mask(std::vector<float> mask) override {
    return frames_.set_detector_mask(std::move(mask));
  }

  // L(V) and dL/dV for the stored frames at an arbitrary V, without changing the state. This is
  // what the gradient test compares with torch autograd.
  Status loss_and_gradient(const RealImage& phase_rad, double* loss, RealImage* gradient);

  // The probe intensity sum |psi|^2 the model uses: the mean counts per stored pattern.
  double intensity_scale() const { return frames_.intensity_scale(); }
  const std::vector<ProbePlacement>& placements() const { return frames_.placements(); }
  const ForwardModel& forward_model() const { return frames_.model(); }
  int threads() const { return threads_; }

 private:
  // L(V) and dL/dV; leaves exp(iV) in transmission_.
  double compute_gradient(const RealImage& phase, RealImage* gradient);
  // The priors' step on phase_ (prior_step.hpp), after each descent step.
  void apply_priors();

  ReconstructorConfig config_;
  FrameStore frames_;
  int threads_;
  BatchedFft forward_;
  BatchedFft backward_;
  BatchedFft forward_single_;
  BatchedFft backward_single_;

  RealImage phase_;
  ComplexImage transmission_;
  std::vector<RealImage> slot_gradients_;  // one per fixed run of batches
  std::vector<double> position_loss_;
  std::vector<AlignedComplexBuffer> thread_buffers_;  // far fields, then back-propagated waves
  std::vector<AlignedComplexBuffer> thread_waves_;    // exit waves
  RealImage gradient_;
  RealImage prior_scratch_;
  int iterations_ = 0;
  std::vector<double> loss_history_;
};

}  // namespace ptypilot
