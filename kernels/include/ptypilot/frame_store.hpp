// FrameStore: the frames a reconstructor has taken in, and everything that follows from them on
// the host, for both backends (CpuReconstructor, CudaReconstructor), so that validation, the
// placements, the measured values and the preconditioned step of reconstructor.hpp exist once.
//
// The CUDA backend uploads what add() appended (placements, measured rows, new shifted probes)
// and the whole step map; the CPU backend reads it in place.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "ptypilot/detector.hpp"
#include "ptypilot/forward_model.hpp"
#include "ptypilot/prefaulted_allocator.hpp"
#include "ptypilot/reconstructor.hpp"

namespace ptypilot {

// A warm-start potential must have the object grid's shape and be finite everywhere.
Status check_potential(const RealImage& phase_rad, const ObjectGrid& grid);

class FrameStore {
 public:
  // Throws std::invalid_argument for a bad step_size, regularization, prior weight or probe/grid
  // pair.
  explicit FrameStore(const ReconstructorConfig& config);

  // Validates every frame first (the messages of Reconstructor::add_frames); on error nothing
  // is stored. Then appends them and recomputes the intensity scale and the step map.
  Status add(std::span<const Frame> frames);
  // Reconstructor::set_detector_mask: only while empty().
  Status set_detector_mask(std::vector<float> mask);

  std::size_t size() const { return placements_.size(); }
  bool empty() const { return placements_.empty(); }
  const ForwardModel& model() const { return model_; }
  int window_px() const { return model_.window_px(); }
  int detector_px() const { return detector_px_; }
  const std::vector<ProbePlacement>& placements() const { return placements_; }
  // detector_px^2 values per frame: the counts (intensity loss) or their square roots
  // (amplitude).
  std::span<const float> measured() const { return measured_; }
  // The loss's per-element weights over the window and the detector pixel each reads
  // (detector.hpp); both empty where the detector is the window and no mask was given, so that
  // the backends run their unweighted loops.
  const WindowWeights& window_weights() const { return weights_; }
  bool weighted() const { return !weights_.weight.empty(); }
  // The probe intensity sum |psi|^2 the model uses: the mean counts per stored pattern.
  double intensity_scale() const { return intensity_scale_; }
  // The per-pixel step of reconstructor.hpp: V <- V - step_map * dL/dV.
  const RealImage& step_map() const { return step_map_; }
  // dark_smoothing * (1 - W / max W) per pixel, the diffusion weight of the dark-smoothing
  // prior (reconstructor.hpp); empty when that prior is off.
  const RealImage& dark_weight() const { return dark_weight_; }

 private:
  void update_step_map();
  void update_counted();  // counted_ from detector_mask_

  ReconstructorConfig config_;
  ForwardModel model_;
  int detector_px_;
  WindowWeights weights_;
  std::vector<ProbePlacement> placements_;
  std::vector<std::uint64_t> frame_ids_;
  std::vector<float, PrefaultedAllocator<float>> measured_;  // written on the decision path
  double counts_sum_ = 0.0;
  double intensity_scale_ = 0.0;
  std::vector<double> mean_pattern_;  // sum over frames of J_p(k), for the intensity step scale
  std::vector<float> detector_mask_;  // detector_px^2: config.detector_mask, or all 1
  std::vector<double> counted_;       // 1 where detector_mask_ is not 0, else 0
  RealImage illumination_;            // W(r) for the unit probe, summed over frames
  RealImage step_map_;
  RealImage dark_weight_;
};

}  // namespace ptypilot
