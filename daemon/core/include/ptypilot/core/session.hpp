// Session: one adaptive acquisition, the closed loop itself, free of threads and sockets so that
// it can be driven by the daemon's event loop and by tests alike.
//
//   start():       the first sub-sequence (the policy's first proposal; a sparse grid for the
//                  adaptive policies) goes through Safety to the ScanDriver.
//   on_frames():   frames that the Recorder has already made durable. When a sub-sequence is
//                  complete: Reconstructor update (warm start) -> Policy -> Safety -> ScanDriver,
//                  timed, recorded, and reported through the event callback.
//   The session is done when the position budget is spent and its last frames are in, or after
//   stop() once the sub-sequence in flight has arrived.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "ptypilot/core/assembler.hpp"
#include "ptypilot/core/config.hpp"
#include "ptypilot/wire/frame.hpp"
#include "ptypilot/core/health.hpp"
#include "ptypilot/core/policy.hpp"
#include "ptypilot/core/recorder.hpp"
#include "ptypilot/core/safety.hpp"
#include "ptypilot/calibration.hpp"
#include "ptypilot/frame_geometry.hpp"
#include "ptypilot/reconstructor.hpp"
#include "ptypilot/scan_driver/scan_driver.hpp"

namespace ptypilot {

struct LoopLatency {
  double reconstruct_ms = 0;
  double policy_ms = 0;
  double safety_ms = 0;
  double driver_ms = 0;
  double total_ms = 0;  // last frame of the sub-sequence received -> next positions accepted
  // CPU time the live page's thread took from the start of the update to the positions accepted:
  // the most it can have taken from this decision (0 without the page).
  double live_page_cpu_ms = 0;
};

struct SubSequenceReport {
  std::uint32_t sub_sequence = 0;
  std::uint32_t positions = 0;
  std::uint64_t frames_received = 0;
  LoopLatency latency;
  SafetyReport safety;
  bool issued_next = false;
};

class Session {
 public:
  struct Parts {
    std::unique_ptr<Reconstructor> reconstructor;
    std::unique_ptr<Policy> policy;
    std::unique_ptr<ScanDriver> driver;
    // Written from the event loop (sub-sequences) while ingest writes frames, so the daemon
    // hands in a function that serialises access.
    std::function<Status(const SubSequenceRecord&)> record_sub_sequence;
    // Told each sub-sequence before the driver sends it (FrameSource::positions_issued: a
    // DECTRIS source places frames by number with it). May be empty.
    std::function<Status(const ScanRequest&)> positions_issued;
    // CPU seconds the live page's thread has used so far; the session reports how much of it
    // fell inside each decision (LoopLatency::live_page_cpu_ms). Empty without the page.
    std::function<double()> live_page_cpu_seconds;
    // Told true when a decision starts (the reconstruction update) and false when it ends,
    // whichever way: the live page holds its sends meanwhile. May be empty.
    std::function<void(bool)> deciding;
  };
  using Clock = std::chrono::steady_clock;

  Session(const ServeConfig& config, std::string id, Parts parts, HealthCounters& health);

  const std::string& id() const { return id_; }
  Status start();
  // Stop after the sub-sequence in flight: no further positions are issued.
  void stop() { stop_requested_ = true; }
  Status on_frames(std::vector<DetectorFrame>& frames);

  bool done() const { return done_; }
  bool waiting_for_frames() const { return !done_ && outstanding_ > 0; }
  // A readable explanation of what is missing, for a frame-timeout error.
  std::string missing_description() const;

  std::uint32_t sub_sequences_done() const { return completed_; }
  std::uint64_t frames_received() const { return frames_received_; }
  std::uint64_t positions_issued() const { return safety_.visited().size(); }
  const std::vector<SubSequenceReport>& reports() const { return reports_; }
  // What went out in each sub-sequence k < sub_sequences_issued(): the policy's proposal, Safety's
  // verdict on each proposed position (in the proposal's order), and the approved positions.
  std::uint32_t sub_sequences_issued() const { return next_sub_sequence_; }
  int position_budget() const { return config_.session.total_positions; }
  const ScanRaster& raster() const { return config_.session.raster; }
  const std::vector<Vec2>& proposed(std::uint32_t k) const { return proposed_.at(k); }
  const std::vector<SafetyOutcome>& safety_outcomes(std::uint32_t k) const { return outcomes_.at(k); }
  const std::vector<Vec2>& approved(std::uint32_t k) const { return approved_.at(k); }
  std::vector<Vec2> visited_positions() const;
  Potential potential() const { return reconstructor_->snapshot(); }
  std::string_view policy_name() const { return policy_->name(); }
  std::string_view reconstructor_backend() const { return reconstructor_->backend(); }
  const HealthCounters& assembler_health() const { return assembler_.health(); }
  // What the policy warned of so far (each also logged), in order.
  const std::vector<SessionWarning>& warnings() const { return warnings_; }
  // Electrons per A^2 of the full raster, from the frames reconstructed so far (PolicyContext).
  double dose_e_per_A2() const;

 private:
  Status issue_next(SubSequenceReport* report, Clock::time_point* proposed_at);
  Status complete(std::uint32_t sub_sequence);
  float dark_field_fraction(const DetectorFrame& frame);
  // The frame geometry (frame_geometry.hpp), applied to each frame before anything reads it.
  void apply_geometry(DetectorFrame& frame);
  // The detector's pixel mask (DetectorFrame::detector_mask), OR'ed into the geometry's mask.
  void take_detector_mask(const DetectorFrame& frame);
  // Once, over the first frames: the layout (FrameGeometryCheck) and the disk against the
  // configuration (check_disk); an error when the geometry is grossly wrong.
  Status check_geometry();

  ServeConfig config_;
  std::string id_;
  Parts parts_;
  std::unique_ptr<Reconstructor>& reconstructor_;
  std::unique_ptr<Policy>& policy_;
  HealthCounters& health_;
  Safety safety_;
  Assembler assembler_;
  std::uint32_t next_sub_sequence_ = 0;
  std::uint32_t completed_ = 0;
  std::uint64_t next_frame_index_ = 0;
  std::uint64_t frames_received_ = 0;
  std::uint64_t outstanding_ = 0;  // frames issued and not yet received
  std::vector<std::vector<Vec2>> proposed_;  // per sub-sequence, the raw policy output
  std::vector<std::vector<SafetyOutcome>> outcomes_;
  std::vector<std::vector<Vec2>> approved_;
  std::vector<float> dark_field_;             // per approved position, once its frame is in
  std::vector<SubSequenceReport> reports_;
  std::set<int> logged_verdicts_;
  std::vector<SessionWarning> warnings_;
  double electrons_ = 0;             // summed over the frames reconstructed so far
  std::uint64_t dosed_frames_ = 0;
  bool stop_requested_ = false;
  bool done_ = false;
  double bright_field_radius_px_ = 0;
  // 1 where a pixel of a rows x cols frame lies outside the bright-field disk (dark_field_fraction).
  std::vector<std::uint8_t> outside_disk_;
  int outside_disk_rows_ = 0, outside_disk_cols_ = 0;
  FrameGeometry geometry_;
  std::optional<FrameGeometryMap> geometry_map_;
  // The buffer apply_geometry maps into; it swaps with the frame's, so that the raw buffer of
  // one frame is the next one's output and no frame allocates.
  std::vector<float> geometry_scratch_;
  std::optional<FrameGeometryCheck> geometry_check_;
  std::optional<MeanPattern> raw_mean_;  // the first frames as they arrived, for check_disk
  bool geometry_checked_ = false;
  std::set<int> geometry_failed_sides_;  // raw sides the geometry cannot map, logged once each
  std::shared_ptr<const std::vector<float>> detector_mask_;  // the last one taken
};

}  // namespace ptypilot
