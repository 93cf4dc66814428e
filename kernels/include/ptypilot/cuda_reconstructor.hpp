// CudaReconstructor: the Reconstructor on cuFFT and the kernels of src/cuda/, the same math as
// CpuReconstructor (reconstructor.hpp). Built only where nvcc was found (PTYPILOT_WITH_CUDA).
//
// The frames, their placements and sub-pixel-shifted probes and the step map come from the
// host's FrameStore, the one implementation of that part for both backends, and are uploaded
// once per add_frames. During a session everything else stays on the device. An iteration is
// one batched forward and one inverse cuFFT of all patterns in place, around four fused kernels
// (exit waves from V and the probes; residual and loss; gradient scatter into dL/dV with atomics;
// the preconditioned step), captured once as a CUDA graph and replayed on one stream. Buffers
// and the cuFFT plan grow in add_frames only; iterate() allocates nothing. The loss of each
// iteration is checked on the device, so that a divergent step is not applied, and copied back
// once per iterate() call.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "ptypilot/frame_store.hpp"
#include "ptypilot/reconstructor.hpp"

namespace ptypilot {

class CudaReconstructor final : public Reconstructor {
 public:
  // Throws std::runtime_error when CUDA was not built or there is no device (naming the
  // reason), and std::invalid_argument for a bad config, as CpuReconstructor does.
  explicit CudaReconstructor(const ReconstructorConfig& config);
  ~CudaReconstructor() override;
  CudaReconstructor(const CudaReconstructor&) = delete;
  CudaReconstructor& operator=(const CudaReconstructor&) = delete;

  Status add_frames(std::span<const Frame> frames) override;
  Status iterate(int iterations) override;
  // Copies V from the device. It cannot fail: should the device have failed, it returns the
  // last potential it copied, and the next call that can return a Status reports the error.
  Potential snapshot() const override;
  Status set_potential(const RealImage& phase_rad) override;
  std::string_view backend() const override { return "cuda"; }

  // L(V) and dL/dV for the stored frames at an arbitrary V, without changing the state.
  Status loss_and_gradient(const RealImage& phase_rad, double* loss, RealImage* gradient);

  double intensity_scale() const { return frames_.intensity_scale(); }
  const std::vector<ProbePlacement>& placements() const { return frames_.placements(); }
  // The device's name and compute capability.
  const std::string& device_name() const { return device_name_; }
  // Whether iterations replay a CUDA graph (false: the same launches, one by one).
  bool uses_graph() const;

  // The floor of one iteration: one batched forward plus one inverse cuFFT of every stored
  // pattern, on the reconstructor's own plan, buffer and stream, timed from the host as
  // iterate(1) is (enqueue to completion). The buffer's contents are scratch between iterations.
  Status time_fft_round_trip(double* milliseconds);

 private:
  struct Device;

  ReconstructorConfig config_;
  FrameStore frames_;
  std::unique_ptr<Device> device_;
  std::string device_name_;
  int iterations_ = 0;
  std::vector<double> loss_history_;
  mutable RealImage phase_host_;
  mutable bool phase_host_current_ = true;
};

}  // namespace ptypilot
