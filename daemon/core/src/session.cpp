#include "ptypilot/core/session.hpp"

#include <algorithm>
#include <cmath>
#include <nlohmann/json.hpp>

#include "ptypilot/wire/counters.hpp"
#include "ptypilot/wire/log.hpp"

namespace ptypilot {
namespace {

double ms_between(Session::Clock::time_point a, Session::Clock::time_point b) {
  return std::chrono::duration<double, std::milli>(b - a).count();
}

}  // namespace

Session::Session(const ServeConfig& config, std::string id, Parts parts, HealthCounters& health)
    : config_(config),
      id_(std::move(id)),
      parts_(std::move(parts)),
      reconstructor_(parts_.reconstructor),
      policy_(parts_.policy),
      health_(health),
      safety_(config.safety_config()),
      assembler_(AssemblerConfig{config.detector.position_tolerance_A}) {
  const auto& p = config.session.probe;
  bright_field_radius_px_ = p.semiangle_mrad / p.detector_pixel_mrad;
  geometry_ = config.frame_geometry();
  policy_->reset(config.session.seed);
}

void Session::take_detector_mask(const DetectorFrame& f) {
  detector_mask_ = f.detector_mask;  // once per mask, whatever comes of it
  const std::vector<float>& bad = *f.detector_mask;
  std::size_t marked = 0;
  for (float w : bad) marked += w == 0.0f;
  std::vector<float> mask = geometry_.mask;  // detector.geometry.mask_path's, if any
  if (mask.empty()) mask.assign(bad.size(), 1.0f);
  if (bad.size() != f.counts.size() || mask.size() != bad.size()) {
    log::warn("detector_pixel_mask_unusable",
              {{"session", id_},
               {"mask_pixels", bad.size()},
               {"frame_pixels", f.counts.size()},
               {"configured_mask_pixels", geometry_.mask.size()},
               {"note", "the detector's pixel mask is not of the frames' shape; not applied"}});
    return;
  }
  std::size_t already = 0;
  for (std::size_t i = 0; i < bad.size(); ++i) {
    if (bad[i] != 0.0f) continue;
    already += mask[i] == 0.0f;
    mask[i] = 0.0f;
  }
  geometry_.mask = std::move(mask);
  geometry_map_.reset();  // rebuilt below with the mask
  geometry_failed_sides_.clear();
  // The reconstructor, made before the header came, leaves those pixels free from now on where
  // its backend can (before its first frame, which this is).
  std::string reconstructor = "free: weight 0 in the loss";
  try {
    const FrameGeometryMap map(geometry_, f.rows);
    if (Status s = reconstructor_->set_detector_mask(map.reconstructor_mask()); !s.ok())
      reconstructor = "their counts are 0, their weight stays 1: " + s.message();
  } catch (const std::invalid_argument& e) {
    reconstructor = std::string("not applied: ") + e.what();
  }
  health_.increment(counters::kDetectorPixelsMasked, marked);
  log::info("detector_pixel_mask",
            {{"session", id_},
             {"pixels_masked", marked},
             {"already_in_mask_path", already},
             {"reconstructor", reconstructor},
             {"note", "the detector's header marks these pixels bad: their counts are set to 0 "
                      "before reconstruction; the recording keeps them as they arrived"}});
}

void Session::apply_geometry(DetectorFrame& f) {
  if (f.rows != f.cols || f.counts.size() != std::size_t(f.rows) * f.cols) return;
  if (f.detector_mask && f.detector_mask != detector_mask_) take_detector_mask(f);
  if (!geometry_checked_) {
    if (!raw_mean_ || raw_mean_->side() != f.rows) raw_mean_.emplace(f.rows, geometry_.layout);
    if (raw_mean_->frames() < std::size_t(config_.detector.geometry_check.frames)) {
      if (geometry_.mask.size() == f.counts.size()) {  // bad pixels do not move the disk
        std::vector<float> masked = f.counts;
        for (std::size_t i = 0; i < masked.size(); ++i)
          if (geometry_.mask[i] == 0.0f) masked[i] = 0.0f;
        raw_mean_->add(masked);
      } else {
        raw_mean_->add(f.counts);
      }
    }
  }
  if (!geometry_map_ || geometry_map_->raw_side() != f.rows) {
    if (geometry_failed_sides_.count(f.rows)) return;
    try {
      geometry_map_.emplace(geometry_, f.rows);
    } catch (const std::invalid_argument& e) {
      // The reconstructor then refuses the frame's size, ending the session with its reason.
      geometry_failed_sides_.insert(f.rows);
      geometry_map_.reset();
      log::error("frame_geometry_unusable",
                 {{"session", id_}, {"frame_px", f.rows}, {"error", e.what()}});
      return;
    }
  }
  geometry_scratch_.resize(geometry_map_->out_pixels());
  geometry_map_->apply(f.counts, geometry_scratch_);
  std::swap(f.counts, geometry_scratch_);
  f.rows = f.cols = geometry_map_->out_side();
  if (!geometry_checked_) {
    if (!geometry_check_ || geometry_check_->frames() == 0) {
      const double radius = geometry_.disk_radius_px > 0 ? geometry_.disk_radius_px / geometry_.bin
                                                         : bright_field_radius_px_;
      geometry_check_.emplace(f.rows, radius);
    }
    geometry_check_->add(f.counts);
  }
}

Status Session::check_geometry() {
  // The first sub-sequence, or geometry_check.frames frames, whichever is first: 32 frames give
  // the disk's centre to a few hundredths of a pixel, early enough to act on.
  const GeometryCheckSettings& settings = config_.detector.geometry_check;
  if (geometry_checked_ || !geometry_check_ ||
      (geometry_check_->frames() < std::size_t(settings.frames) && completed_ == 0))
    return Status::Ok();
  geometry_checked_ = true;
  auto warn = [&](const std::string& code, const std::string& message, nlohmann::json detail) {
    health_.increment(counters::kFrameGeometryDisagreements);
    log::warn(code, {{"session", id_}, {"message", message}, {"detail", detail}});
    warnings_.push_back({code, message, detail.dump()});
  };

  if (const auto layout = geometry_check_->warning()) {
    // A wrong layout puts the disk in the corners of the raw frames' centred view: nothing to
    // measure there until the layout is right.
    const FrameGeometryCheck::Finding f = geometry_check_->finding();
    warn(layout->code, layout->message,
         {{"layout", to_string(geometry_.layout)},
          {"frames", geometry_check_->frames()},
          {"near_zero_frequency", f.near_zero},
          {"near_frame_centre", f.near_centre}});
    return Status::Ok();
  }
  if (!raw_mean_ || raw_mean_->frames() == 0) return Status::Ok();
  // The raw frames' disk: bin raw pixels make one of the reconstructor's.
  const double expected_radius_px = geometry_.disk_radius_px > 0
                                        ? geometry_.disk_radius_px
                                        : bright_field_radius_px_ * geometry_.bin;
  const DiskCheckTolerances tolerances{settings.warn_offset_px, settings.warn_radius_fraction,
                                       settings.refuse_offset_radii,
                                       settings.refuse_radius_fraction};
  const DiskCheckVerdict verdict = check_disk(raw_mean_->mean(), raw_mean_->side(), geometry_,
                                              expected_radius_px, tolerances);
  if (verdict.kind == DiskCheckVerdict::Kind::kAgrees) return Status::Ok();
  // Flat or noisy frames (a benchmark's, a test's) hold no disk to judge, unless one is required.
  if (!verdict.disk && !settings.require_disk) return Status::Ok();
  nlohmann::json detail = {{"frames", raw_mean_->frames()},
                           {"configured_disk_offset_px",
                            {geometry_.disk_offset_y_px, geometry_.disk_offset_x_px}},
                           {"expected_radius_px", expected_radius_px}};
  if (verdict.disk) {
    detail["disk_offset_px"] = {verdict.disk->offset_y_px, verdict.disk->offset_x_px};
    detail["disk_radius_px"] = verdict.disk->radius_px;
    detail["offset_error_px"] = verdict.offset_error_px;
    detail["radius_disagreement"] = verdict.radius_disagreement;
  }
  if (verdict.kind == DiskCheckVerdict::Kind::kRefuse) {
    if (!settings.refuse) {
      warn("frame_geometry_disagrees", verdict.message, detail);
      return Status::Ok();
    }
    warn(verdict.code, verdict.message, detail);
    stop_requested_ = true;
    return {StatusCode::kFailedPrecondition,
            verdict.message + " (detector.geometry_check.refuse: false only warns)"};
  }
  warn(verdict.code, verdict.message, detail);
  return Status::Ok();
}

float Session::dark_field_fraction(const DetectorFrame& f) {
  // Counts scattered outside the bright-field disk: the paper's hint for where the atoms are.
  // The frame is the reconstructor's (apply_geometry), so the disk is around pixel [0, 0]. Which
  // pixels lie outside is worked out once per frame shape, not at every pixel of every frame.
  if (f.rows != outside_disk_rows_ || f.cols != outside_disk_cols_) {
    const double r2 = bright_field_radius_px_ * bright_field_radius_px_;
    auto frequency = [](int k, int n) { return double(k < (n + 1) / 2 ? k : k - n); };
    outside_disk_.assign(std::size_t(f.rows) * f.cols, 0);
    for (int r = 0; r < f.rows; ++r)
      for (int c = 0; c < f.cols; ++c) {
        const double y = frequency(r, f.rows), x = frequency(c, f.cols);
        outside_disk_[std::size_t(r) * f.cols + c] = y * y + x * x > r2;
      }
    outside_disk_rows_ = f.rows;
    outside_disk_cols_ = f.cols;
  }
  // Four interleaved partial sums, not one chain of 4,096 dependent double additions, and the
  // mask instead of each pixel's frequency: 2.3 us a 64 x 64 frame instead of 5.2 us. Counts
  // that are whole numbers (every integer detector) sum exactly in any order; other values may
  // differ from one chain's sum in the last double bit, far below the float returned.
  constexpr std::size_t kLanes = 4;
  double outside_lane[kLanes] = {}, total_lane[kLanes] = {};
  const std::size_t pixels = std::min(f.counts.size(), outside_disk_.size());
  const std::size_t whole = pixels / kLanes * kLanes;
  for (std::size_t i = 0; i < whole; i += kLanes)
    for (std::size_t l = 0; l < kLanes; ++l) {
      const double v = f.counts[i + l];
      total_lane[l] += v;
      outside_lane[l] += outside_disk_[i + l] ? v : 0.0;
    }
  for (std::size_t i = whole; i < pixels; ++i) {
    const double v = f.counts[i];
    total_lane[0] += v;
    outside_lane[0] += outside_disk_[i] ? v : 0.0;
  }
  const double total = (total_lane[0] + total_lane[1]) + (total_lane[2] + total_lane[3]);
  const double outside = (outside_lane[0] + outside_lane[1]) + (outside_lane[2] + outside_lane[3]);
  return total > 0 ? static_cast<float>(outside / total) : 0.0f;
}

double Session::dose_e_per_A2() const {
  const double step_A = config_.session.raster.step_A;
  if (dosed_frames_ == 0 || !(step_A > 0)) return 0.0;
  return electrons_ / static_cast<double>(dosed_frames_) / (step_A * step_A);
}

std::vector<Vec2> Session::visited_positions() const {
  const auto v = safety_.visited();
  return {v.begin(), v.end()};
}

Status Session::start() {
  SubSequenceReport report;
  Clock::time_point proposed_at;
  const Status s = issue_next(&report, &proposed_at);
  // Nothing went out (the policy gave nothing usable): no frame will ever come to end it.
  if (s.ok() && outstanding_ == 0) done_ = true;
  return s;
}

Status Session::issue_next(SubSequenceReport* report, Clock::time_point* proposed_at) {
  const int remaining = safety_.remaining();
  if (remaining <= 0 || stop_requested_) return Status::Ok();
  const int count = std::min(config_.session.sub_sequence_size, remaining);

  const Potential potential = reconstructor_->snapshot();
  PolicyContext context;
  context.raster = config_.session.raster;
  context.sub_sequence = static_cast<int>(next_sub_sequence_);
  context.count = count;
  context.total_positions = config_.session.total_positions;
  context.visited_A = safety_.visited();
  context.dark_field_fraction = dark_field_;
  context.potential = completed_ > 0 ? &potential : nullptr;
  context.dose_e_per_A2 = dose_e_per_A2();
  std::vector<SessionWarning> warnings;
  context.warnings = &warnings;

  const auto t0 = Clock::now();
  std::vector<Vec2> proposed;
  const Status proposal = policy_->propose(context, &proposed);
  for (SessionWarning& w : warnings) {
    nlohmann::json detail = nlohmann::json::parse(w.detail_json, nullptr, false);
    log::warn(w.code, {{"session", id_}, {"sub_sequence", next_sub_sequence_},
                       {"message", w.message}, {"detail", std::move(detail)}});
    warnings_.push_back(std::move(w));
  }
  if (const Status& s = proposal; !s.ok()) {
    // A failed policy is not a finished scan (an empty proposal is): the caller ends the session
    // in error, and nothing further is issued from a policy in an unknown state.
    stop_requested_ = true;
    return {s.code(), "policy " + std::string(policy_->name()) + ": " + s.message()};
  }
  const auto t1 = Clock::now();
  SafetyReport safety;
  std::vector<SafetyOutcome> outcomes;
  std::vector<Vec2> approved = safety_.check(proposed, &safety, &outcomes);
  const auto t2 = Clock::now();
  health_.increment(counters::kPositionsRequested, safety.requested);
  health_.increment(counters::kPositionsApproved, safety.approved);
  for (auto [name, n] : {std::pair{counters::kPositionsNonFinite, safety.non_finite},
                         {counters::kPositionsClamped, safety.clamped},
                         {counters::kPositionsSnapped, safety.snapped},
                         {counters::kPositionsDeduplicated, safety.deduplicated},
                         {counters::kPositionsOverBudget, safety.over_budget}})
    if (n > 0) health_.increment(name, n);
  if (safety.approved < safety.requested || safety.clamped > 0)
    log::info("safety_changed_positions",
              {{"session", id_}, {"sub_sequence", next_sub_sequence_}, {"requested", safety.requested},
               {"approved", safety.approved}, {"clamped", safety.clamped},
               {"deduplicated", safety.deduplicated}, {"non_finite", safety.non_finite},
               {"over_budget", safety.over_budget}});
  if (approved.empty()) {
    // The policy gave nothing usable; end the session rather than wait for frames forever.
    health_.increment(counters::kSubSequencesEmpty);
    log::warn("policy_gave_no_usable_positions", {{"session", id_}, {"sub_sequence", next_sub_sequence_}});
    stop_requested_ = true;
    return Status::Ok();
  }

  ScanRequest request;
  request.session_id = id_;
  request.sub_sequence = next_sub_sequence_;
  request.first_frame_index = next_frame_index_;
  request.positions_A = approved;
  request.dwell_s = config_.session.dwell_s;
  if (Status s = assembler_.expect(id_, next_sub_sequence_, next_frame_index_, approved); !s.ok())
    return s;
  if (parts_.positions_issued)
    if (Status s = parts_.positions_issued(request); !s.ok()) return s;
  outstanding_ += approved.size();
  const Status submitted = parts_.driver->submit(request);
  const auto t3 = Clock::now();
  if (!submitted.ok()) {
    outstanding_ -= approved.size();
    return {submitted.code(), "scan driver " + std::string(parts_.driver->name()) + ": " +
                                  submitted.message()};
  }
  proposed_.push_back(std::move(proposed));
  outcomes_.push_back(std::move(outcomes));
  approved_.push_back(std::move(approved));
  next_frame_index_ += approved_.back().size();
  ++next_sub_sequence_;

  report->latency.policy_ms = ms_between(t0, t1);
  report->latency.safety_ms = ms_between(t1, t2);
  report->latency.driver_ms = ms_between(t2, t3);
  report->safety = safety;
  report->issued_next = true;
  *proposed_at = t3;
  return Status::Ok();
}

Status Session::on_frames(std::vector<DetectorFrame>& frames) {
  if (done_) {
    health_.increment(counters::kFramesAfterSessionEnd, frames.size());
    return Status::Ok();
  }
  std::vector<std::uint32_t> completed;
  for (DetectorFrame& f : frames) {
    ++frames_received_;
    apply_geometry(f);
    const std::uint64_t index = f.frame_index;
    const std::uint32_t sub = f.sub_sequence;
    const float dark = dark_field_fraction(f);
    const FrameVerdict verdict = assembler_.add(std::move(f));
    switch (verdict) {
      case FrameVerdict::kCompleted:
        completed.push_back(sub);
        [[fallthrough]];
      case FrameVerdict::kAccepted:
        --outstanding_;
        if (dark_field_.size() <= index) dark_field_.resize(index + 1, 0.0f);
        dark_field_[index] = dark;
        break;
      default:
        // Counted by the assembler (frames_duplicate, frames_unknown_*, ...); the frame is in
        // the recording but not in the reconstruction. Logged once per kind.
        if (logged_verdicts_.insert(static_cast<int>(verdict)).second)
          log::warn("frame_not_reconstructed",
                    {{"session", id_}, {"verdict", to_string(verdict)}, {"frame_index", index},
                     {"sub_sequence", sub}, {"note", "recorded; logged once per kind"}});
        break;
    }
  }
  if (Status s = check_geometry(); !s.ok()) return s;
  for (std::uint32_t sub : completed)
    if (Status s = complete(sub); !s.ok()) return s;
  if (outstanding_ == 0 && (safety_.remaining() <= 0 || stop_requested_)) done_ = true;
  return Status::Ok();
}

Status Session::complete(std::uint32_t sub_sequence) {
  // The decision runs from here to this sub-sequence recorded (the next positions accepted on
  // the way), or to the first error.
  struct Deciding {
    const std::function<void(bool)>& tell;
    explicit Deciding(const std::function<void(bool)>& t) : tell(t) {
      if (tell) tell(true);
    }
    ~Deciding() {
      if (tell) tell(false);
    }
  } deciding(parts_.deciding);
  std::vector<DetectorFrame> frames = assembler_.take_completed(sub_sequence);
  Clock::time_point last_frame{};
  for (const auto& f : frames)
    last_frame = std::max(last_frame, Clock::time_point(std::chrono::nanoseconds(f.received_ns)));
  if (frames.empty()) last_frame = Clock::now();

  SubSequenceReport report;
  report.sub_sequence = sub_sequence;
  report.positions = static_cast<std::uint32_t>(frames.size());
  const double page_cpu_before = parts_.live_page_cpu_seconds ? parts_.live_page_cpu_seconds() : 0.0;
  const auto t0 = Clock::now();
  std::vector<Frame> views;
  views.reserve(frames.size());
  for (const auto& f : frames) {
    views.push_back({f.frame_index, f.position_A, f.view()});
    // A detector that declares no dose (DECTRIS streams) is taken to count electrons.
    double electrons = f.electrons_per_frame > 0 ? f.electrons_per_frame : 0.0;
    if (electrons == 0.0)
      for (float c : f.counts) electrons += c;
    electrons_ += electrons;
    ++dosed_frames_;
  }
  if (Status s = reconstructor_->add_frames(views); !s.ok())
    return {s.code(), "reconstructor rejected sub-sequence " + std::to_string(sub_sequence) + ": " + s.message()};
  if (Status s = reconstructor_->iterate(config_.reconstruction.iterations_per_update); !s.ok())
    return {s.code(), "reconstruction of sub-sequence " + std::to_string(sub_sequence) + ": " + s.message()};
  const auto t1 = Clock::now();
  report.latency.reconstruct_ms = ms_between(t0, t1);
  ++completed_;

  Clock::time_point accepted_at = t1;
  if (Status s = issue_next(&report, &accepted_at); !s.ok()) return s;
  report.latency.total_ms = ms_between(last_frame, accepted_at);
  if (parts_.live_page_cpu_seconds)  // 0 once the page's thread has ended: never below 0
    report.latency.live_page_cpu_ms =
        std::max(0.0, 1e3 * (parts_.live_page_cpu_seconds() - page_cpu_before));
  report.frames_received = frames_received_;

  SubSequenceRecord record;
  record.index = sub_sequence;
  record.proposed_A = proposed_.at(sub_sequence);
  record.approved_A = approved_.at(sub_sequence);
  record.potential = reconstructor_->snapshot().phase_rad;
  if (Status s = parts_.record_sub_sequence(record); !s.ok()) return s;
  reports_.push_back(report);
  return Status::Ok();
}

std::string Session::missing_description() const {
  std::string text = std::to_string(outstanding_) + " frame(s) outstanding";
  for (std::uint32_t sub = 0; sub < next_sub_sequence_; ++sub) {
    const auto missing = assembler_.missing(sub);
    if (missing.empty()) continue;
    text.append("; sub-sequence ").append(std::to_string(sub)).append(" lacks positions");
    for (std::size_t i = 0; i < std::min<std::size_t>(missing.size(), 8); ++i)
      text.append(" ").append(std::to_string(missing[i]));
    if (missing.size() > 8) text += " ...";
  }
  return text;
}

}  // namespace ptypilot
