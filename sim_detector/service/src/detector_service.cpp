// DetectorService, declared in ptypilot/sim/detector_service.hpp. It sends frames with the one
// implementation of the frame wire format the daemon also receives with (ptypilot/wire/).
#include "ptypilot/sim/detector_service.hpp"

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <limits>
#include <stdexcept>
#include <utility>

#include "ptypilot/wire/log.hpp"
#include "ptypilot/wire/native_frame.hpp"
#include "ptypilot/presets.hpp"
#include "merlin_ports.hpp"

namespace ptypilot::sim {

namespace {

using Clock = std::chrono::steady_clock;

// How often run() looks at its stop token when nothing else happens.
constexpr std::chrono::milliseconds kStopPoll{50};
// Frames made at once: enough to amortise the setup of a call, few enough that a full raster
// does not sit in memory and that commands are answered between batches.
constexpr int kBatchFrames = 16;

// The simulated frames' dtype.
PixelType choose_dtype(const DetectorServiceConfig& config) {
  if (config.dtype) return *config.dtype;
  if (config.format.protocol != StreamProtocol::kNative &&
      config.format.protocol != StreamProtocol::kMerlin &&
      config.format.encoding == dectris::Encoding::kBitshuffleLz4) {
    switch (config.format.bitshuffle_bits) {
      case 8: return PixelType::kUint8;
      case 32: return PixelType::kUint32;
      default: return PixelType::kUint16;
    }
  }
  // A point-spread or read noise leaves fractions of an electron, which integers would round.
  const bool whole = config.effects.psf_sigma_px == 0 && config.effects.read_noise_e == 0;
  return config.dose_e_per_A2 > 0 && whole ? PixelType::kUint16 : PixelType::kFloat32;
}

SimulatorFrameSettings simulator_settings(const DetectorServiceConfig& config) {
  return {config.preset, config.seed, config.dose_e_per_A2, config.noise_seed,
          choose_dtype(config), config.effects};
}

std::string last_endpoint(const zmq::socket_t& socket) {
  return socket.get(zmq::sockopt::last_endpoint);
}

std::uint64_t now_ns() {
  using namespace std::chrono;
  return static_cast<std::uint64_t>(
      duration_cast<nanoseconds>(system_clock::now().time_since_epoch()).count());
}

}  // namespace

DetectorService::DetectorService(zmq::context_t& context, DetectorServiceConfig config)
    : DetectorService(context, config,
                      std::make_unique<SimulatorFrameProvider>(simulator_settings(config))) {}

DetectorService::DetectorService(zmq::context_t& context, DetectorServiceConfig config,
                                 std::unique_ptr<FrameProvider> frames)
    : config_(std::move(config)),
      frames_(std::move(frames)),
      dtype_(frames_ ? frames_->format().dtype : PixelType::kFloat32),
      command_socket_(context, zmq::socket_type::rep),
      data_socket_(context, zmq::socket_type::push) {
  if (!frames_) throw std::invalid_argument("DetectorService: no frame provider");
  if (frames_->format().rows != frames_->format().cols)
    throw std::invalid_argument("DetectorService: frames must be square, got " +
                                std::to_string(frames_->format().rows) + " x " +
                                std::to_string(frames_->format().cols));
  if (!(config_.frame_rate_hz >= 0) || !std::isfinite(config_.frame_rate_hz))
    throw std::invalid_argument("frame rate must be >= 0 Hz (0 = as fast as possible), got " +
                                std::to_string(config_.frame_rate_hz));
  emitter_ = make_frame_emitter(config_.format, dtype_);  // throws for a width that does not fit
  // A stopped simulator must not hang at exit on a reader that has gone away; a second is
  // enough to flush what is queued to a live one.
  command_socket_.set(zmq::sockopt::linger, 0);
  data_socket_.set(zmq::sockopt::linger, 1000);
  if (config_.free_run_frames == 0) {
    command_socket_.bind(config_.command_endpoint);
    bound_command_endpoint_ = last_endpoint(command_socket_);
  }
  if (config_.format.protocol == StreamProtocol::kMerlin) {
    merlin_data_ = std::make_unique<MerlinDataPort>(config_.data_endpoint);
    bound_data_endpoint_ = merlin_data_->bound();
    if (config_.free_run_frames == 0) {
      merlin_control_ = std::make_unique<MerlinControlPort>(
          config_.merlin_control_endpoint,
          [this](const std::string& name) { return merlin_command(name); },
          [this] { return jobs_.empty() ? 0 : 1; });  // DETECTORSTATUS: 0 idle, 1 busy
      bound_control_endpoint_ = merlin_control_->bound();
    }
  } else {
    data_socket_.bind(config_.data_endpoint);
    bound_data_endpoint_ = last_endpoint(data_socket_);
  }
  batch_.resize(static_cast<std::size_t>(kBatchFrames) * frame_px() * frame_px());
  batch_origins_.resize(kBatchFrames);
  if (config_.free_run_frames > 0) jobs_.push_back(free_run_job());
}

DetectorService::~DetectorService() = default;

int DetectorService::merlin_command(const std::string& name) {
  if (name == "STARTACQUISITION") {
    if (armed_ || !jobs_.empty()) return 1;  // busy: an acquisition is under way
    const long long frames = std::atoll(merlin_control_->value("NUMFRAMESTOACQUIRE", "1").c_str());
    Job job;  // no frames: only the acquisition header
    emitter_->end_series();
    for (auto& m : emitter_->begin_series(series_for(static_cast<std::uint64_t>(std::max(1LL, frames)))))
      job.before.push_back(std::move(m));
    jobs_.push_back(std::move(job));
    series_open_ = true;
    series_session_.clear();
    armed_ = true;
    return 0;
  }
  if (name == "STOPACQUISITION" || name == "ABORT") {
    // Frames not yet sent are never acquired; the data port says nothing.
    std::uint64_t dropped = 0;
    for (const Job& job : jobs_) dropped += static_cast<std::uint64_t>(job.frames - job.next);
    jobs_.clear();
    message_.clear();
    batch_count_ = 0;
    emitter_->end_series();
    series_open_ = false;
    armed_ = false;
    log::info("sim_detector_acquisition_stopped", {{"frames_dropped", dropped}});
    return 0;
  }
  if (name == "SOFTTRIGGER" || name == "RESET") return 0;
  return 2;  // not recognised
}

bool DetectorService::send_data(WireMessage& message) {
  if (merlin_data_) return message.size() == 1 && merlin_data_->send(message[0]);
  return send_message(data_socket_, message, zmq::send_flags::dontwait);
}

StreamSeries DetectorService::series_for(std::uint64_t number_of_images) const {
  StreamSeries series;
  series.number_of_images = number_of_images;
  series.rows = series.cols = frame_px();
  series.dtype = dtype_;
  series.count_time_s = config_.frame_rate_hz > 0 ? 1.0 / config_.frame_rate_hz : 1e-3;
  series.incident_energy_eV = frames_->format().energy_keV * 1000.0;
  return series;
}

DetectorService::Job DetectorService::free_run_job() {
  const ExperimentPreset& preset = experiment_preset(config_.preset);
  const std::uint64_t raster = static_cast<std::uint64_t>(preset.scan_rows) * preset.scan_cols;
  if (config_.free_run_frames > static_cast<std::uint64_t>(std::numeric_limits<std::int32_t>::max()))
    throw std::invalid_argument("--frames must be at most 2^31 - 1");
  Job job;
  job.command.set_session_id("free-run");
  job.command.set_dwell_s(series_for(0).count_time_s);
  for (std::uint64_t k = 0; k < std::min(raster, config_.free_run_frames); ++k) {
    wire::Position* p = job.command.add_positions();
    p->set_y_a(static_cast<double>(k / preset.scan_cols) * preset.step_A);
    p->set_x_a(static_cast<double>(k % preset.scan_cols) * preset.step_A);
  }
  job.frames = static_cast<std::int64_t>(config_.free_run_frames);
  if (emitter_->uses_series()) {
    for (auto& m : emitter_->begin_series(series_for(config_.free_run_frames)))
      job.before.push_back(std::move(m));
    job.end_series_after = true;
  }
  return job;
}

Status DetectorService::validate(const wire::ScanCommand& command) const {
  if (command.positions_size() == 0) return invalid_argument("the command has no positions");
  if (!std::isfinite(command.dwell_s()) || command.dwell_s() < 0)
    return invalid_argument("dwell_s must be finite and >= 0, got " +
                            std::to_string(command.dwell_s()));
  // The provider's rule, so that an accepted command can always be served.
  for (int i = 0; i < command.positions_size(); ++i) {
    const Vec2 p{command.positions(i).y_a(), command.positions(i).x_a()};
    if (Status s = frames_->check(p); !s.ok())
      return {s.code(), "position " + std::to_string(i) + ": " + s.message()};
  }
  return Status::Ok();
}

wire::ScanAck DetectorService::answer(const wire::ScanCommand& command) {
  wire::ScanAck ack;
  ack.set_command_id(command.command_id());
  if (have_last_ && command.command_id() == last_command_id_ &&
      command.session_id() == last_session_id_) {
    // A driver resends after a lost ack; the first copy is already being scanned.
    ack.set_accepted(true);
    log::info("sim_detector_resend",
              {{"session_id", command.session_id()}, {"command_id", command.command_id()}});
    return ack;
  }
  if (Status s = validate(command); !s.ok()) {
    ++commands_rejected_;
    ack.set_accepted(false);
    ack.set_error(s.message());
    log::warn("sim_detector_command_rejected", {{"session_id", command.session_id()},
                                                {"command_id", command.command_id()},
                                                {"reason", s.message()}});
    return ack;
  }
  ++commands_accepted_;
  ack.set_accepted(true);
  have_last_ = true;
  last_session_id_ = command.session_id();
  last_command_id_ = command.command_id();
  log::write(log::Level::kDebug, "sim_detector_command_accepted",
             {{"session_id", command.session_id()},
              {"command_id", command.command_id()},
              {"sub_sequence", command.sub_sequence()},
              {"positions", command.positions_size()},
              {"first_frame_index", command.first_frame_index()}});
  Job job;
  job.command = command;
  job.frames = command.positions_size();
  if (armed_) {
    // Merlin: the acquisition that control started is this session's.
    armed_ = false;
    series_session_ = command.session_id();
  } else if (emitter_->uses_series() && (!series_open_ || series_session_ != command.session_id())) {
    // Each session is one series: close the previous session's, open this one's.
    for (auto& m : emitter_->end_series()) job.before.push_back(std::move(m));
    for (auto& m : emitter_->begin_series(series_for(0))) job.before.push_back(std::move(m));
    series_open_ = true;
    series_session_ = command.session_id();
  }
  jobs_.push_back(std::move(job));
  return ack;
}

void DetectorService::handle_command() {
  zmq::message_t request;
  if (!command_socket_.recv(request, zmq::recv_flags::dontwait)) return;
  wire::ScanCommand command;
  bool parsed =
      !request.more() && command.ParseFromArray(request.data(), static_cast<int>(request.size()));
  // A REP socket must take the whole request before it may reply.
  while (request.more()) {
    if (!command_socket_.recv(request, zmq::recv_flags::none)) break;
  }
  wire::ScanAck ack;
  if (!parsed) {
    ++commands_rejected_;
    ack.set_accepted(false);
    ack.set_error("the request is not a single-part serialized ScanCommand");
    log::warn("sim_detector_command_rejected", {{"reason", ack.error()}});
  } else {
    ack = answer(command);
  }
  std::string bytes;
  ack.SerializeToString(&bytes);
  command_socket_.send(zmq::buffer(bytes), zmq::send_flags::none);
}

Status DetectorService::make_batch(const Job& job) {
  const int count = static_cast<int>(std::min<std::int64_t>(kBatchFrames, job.frames - job.next));
  std::vector<Vec2> positions(static_cast<std::size_t>(count));
  for (int i = 0; i < count; ++i) {
    const wire::Position& p =
        job.command.positions(static_cast<int>((job.next + i) % job.command.positions_size()));
    positions[static_cast<std::size_t>(i)] = {p.y_a(), p.x_a()};
  }
  const std::size_t pixels = static_cast<std::size_t>(frame_px()) * frame_px();
  batch_first_ = job.next;
  batch_count_ = 0;
  if (Status s = frames_->frames(positions, std::span<float>(batch_).first(count * pixels),
                                 std::span<FrameOrigin>(batch_origins_).first(count));
      !s.ok())
    return s;
  batch_count_ = count;
  return Status::Ok();
}

void DetectorService::send_ready_frames(Clock::time_point now) {
  const bool paced = config_.frame_rate_hz > 0;
  const auto period = paced ? std::chrono::duration_cast<Clock::duration>(
                                  std::chrono::duration<double>(1.0 / config_.frame_rate_hz))
                            : Clock::duration::zero();
  if (paced && now < next_frame_at_) return;
  const std::size_t pixels = static_cast<std::size_t>(frame_px()) * frame_px();
  // Unpaced, one batch at most per call, so that commands are answered between batches.
  for (int sent = 0; !jobs_.empty() && sent < kBatchFrames; ++sent) {
    Job& job = jobs_.front();
    if (!send_queued(job.before)) return;
    if (job.next >= job.frames) {
      if (job.end_series_after) {
        for (auto& m : emitter_->end_series()) job.after.push_back(std::move(m));
        job.end_series_after = false;
      }
      if (!send_queued(job.after)) return;
      jobs_.pop_front();
      batch_count_ = 0;
      continue;
    }
    if (job.next >= batch_first_ + batch_count_ || job.next < batch_first_) {
      if (Status s = make_batch(job); !s.ok()) {
        // Validation rules out all but a recorded frame that cannot be read; if it happens, the
        // reader sees a gap.
        log::error("sim_detector_simulation_failed", {{"session_id", job.command.session_id()},
                                                      {"command_id", job.command.command_id()},
                                                      {"error", s.message()}});
        jobs_.pop_front();
        batch_count_ = 0;
        continue;
      }
    }
    const std::int64_t i = job.next;
    const FrameOrigin& origin = batch_origins_[static_cast<std::size_t>(i - batch_first_)];
    if (message_.empty() && origin.missing) {  // the provider logged why
      ++job.next;  // the reader sees a gap, as with a real detector that loses a frame
      continue;
    }
    if (message_.empty()) {  // else: the frame the socket refused last time, sent again as is
      const wire::Position& position =
          job.command.positions(static_cast<int>(i % job.command.positions_size()));
      OutgoingFrame frame;
      frame.session_id = job.command.session_id();
      frame.sub_sequence = job.command.sub_sequence();
      frame.frame_index = job.command.first_frame_index() + static_cast<std::uint64_t>(i);
      frame.position_index = static_cast<std::uint32_t>(i);
      frame.position_A = {position.y_a(), position.x_a()};
      frame.rows = frame.cols = frame_px();
      frame.dtype = dtype_;
      frame.counts = std::span<const float>(batch_).subspan(
          static_cast<std::size_t>(i - batch_first_) * pixels, pixels);
      frame.electrons_per_frame = electrons_per_frame();
      frame.exposure_s = job.command.dwell_s();
      frame.timestamp_ns = now_ns();
      frame.replay_source_frame = origin.recorded_frame;
      frame.replay_distance_A = origin.distance_A;
      if (Status s = emitter_->encode(frame, &message_); !s.ok()) {
        log::error("sim_detector_encoding_failed", {{"frame_index", frame.frame_index},
                                                    {"error", s.message()}});
        message_.clear();
        ++job.next;  // the reader sees a gap, as with a real detector that loses a frame
        continue;
      }
    }
    if (!send_data(message_))
      return;  // the reader is behind: wait for POLLOUT rather than drop or block
    message_.clear();
    ++frames_sent_;
    ++job.next;
    if (paced) {
      // Keep the schedule, but after a stall longer than one period restart it instead of
      // sending a burst to catch up.
      next_frame_at_ = (now - next_frame_at_ > period) ? now + period : next_frame_at_ + period;
      return;
    }
  }
}

bool DetectorService::send_queued(std::deque<WireMessage>& messages) {
  while (!messages.empty()) {
    if (!send_data(messages.front())) return false;
    messages.pop_front();
  }
  return true;
}

void DetectorService::run(std::stop_token stop) {
  log::info("sim_detector_serving", {{"command_endpoint", bound_command_endpoint_},
                                     {"data_endpoint", bound_data_endpoint_},
                                     {"control_endpoint", bound_control_endpoint_},
                                     {"frames", frames_->format().source},
                                     {"frame_px", frame_px()},
                                     {"dtype", to_string(dtype_)},
                                     {"protocol", to_string(config_.format.protocol)},
                                     {"encoding", encoding_label(config_.format)},
                                     {"free_run_frames", config_.free_run_frames},
                                     {"electrons_per_frame", electrons_per_frame()}});
  const bool paced = config_.frame_rate_hz > 0;
  std::vector<zmq_pollitem_t> items;
  while (!stop.stop_requested()) {
    const auto now = Clock::now();
    auto timeout = kStopPoll;
    bool due = false;
    if (!jobs_.empty()) {
      if (paced && now < next_frame_at_) {
        timeout =
            std::min(timeout, std::chrono::ceil<std::chrono::milliseconds>(next_frame_at_ - now));
      } else {
        due = true;  // a frame is due: wake when the data socket can take it
      }
    }
    items.clear();
    items.push_back({command_socket_.handle(), 0, ZMQ_POLLIN, 0});
    const std::size_t data_item = items.size();
    if (merlin_data_) {
      merlin_data_->add_pollitems(items, due);
    } else if (due) {
      items.push_back({data_socket_.handle(), 0, ZMQ_POLLOUT, 0});
    }
    const std::size_t control_item = items.size();
    if (merlin_control_) merlin_control_->add_pollitems(items);
    const int rc = zmq_poll(items.data(), static_cast<int>(items.size()), static_cast<long>(timeout.count()));
    if (rc < 0) {
      if (zmq_errno() == EINTR) continue;
      throw zmq::error_t();
    }
    if (items[0].revents & ZMQ_POLLIN) handle_command();
    if (merlin_control_) merlin_control_->handle(items, control_item);
    if (merlin_data_) {
      merlin_data_->handle(items, data_item);
      if (due && merlin_data_->connected() && (items[data_item + 1].revents & ZMQ_POLLOUT))
        send_ready_frames(Clock::now());
    } else if (due && (items[data_item].revents & ZMQ_POLLOUT)) {
      send_ready_frames(Clock::now());
    }
  }
  std::uint64_t unsent = 0;
  for (const Job& job : jobs_) unsent += static_cast<std::uint64_t>(job.frames - job.next);
  if (series_open_ && jobs_.empty()) {
    // Disarmed: close the session's series, if the reader can still take it.
    std::deque<WireMessage> end;
    for (auto& m : emitter_->end_series()) end.push_back(std::move(m));
    send_queued(end);
  }
  log::info("sim_detector_stopped", {{"commands_accepted", commands_accepted()},
                                     {"commands_rejected", commands_rejected()},
                                     {"frames_sent", frames_sent()},
                                     {"protocol", to_string(config_.format.protocol)},
                                     {"frames_unsent", unsent}});
}

}  // namespace ptypilot::sim
