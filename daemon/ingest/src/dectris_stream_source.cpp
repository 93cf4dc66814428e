#include "ptypilot/ingest/dectris_stream_source.hpp"

#include <algorithm>
#include <cerrno>
#include <stdexcept>

#include "ptypilot/ingest/frame_clock.hpp"
#include "ptypilot/ingest/zmq_frame_source.hpp"
#include "ptypilot/wire/counters.hpp"
#include "ptypilot/wire/log.hpp"

namespace ptypilot {
namespace {

using Clock = std::chrono::steady_clock;

const char* protocol_name(dectris::Protocol p) {
  return p == dectris::Protocol::kV1 ? "dectris-v1" : "dectris-v2";
}

std::string id_range(std::uint64_t first, std::uint64_t last) {
  return first == last ? std::to_string(first)
                       : std::to_string(first) + ".." + std::to_string(last);
}

// ZMQ_MAXMSGSIZE: a v2 start message carries, per threshold (up to two), a float32 flatfield and
// a uint32 pixel mask of the frame's shape in one part; compressed frames (bslz4, lz4) are at
// most a little larger than raw ones. So four float32 frames, plus 1 MiB for the JSON and CBOR.
std::int64_t dectris_part_limit(const DectrisStreamSourceConfig& c) {
  return 4 * frame_part_limit(c.expected_rows, c.expected_cols, PixelType::kFloat32) + (1 << 20);
}

}  // namespace

DectrisStreamSource::DectrisStreamSource(zmq::context_t& ctx,
                                         const DectrisStreamSourceConfig& config,
                                         std::string session_id, StreamFaultHandler on_fault)
    : config_(config),
      map_(std::move(session_id)),
      on_fault_(std::move(on_fault)),
      socket_(ctx, zmq::socket_type::pull),
      keeper_(ctx, socket_) {
  const char* name = protocol_name(config_.protocol);
  if (config_.endpoint.empty())
    throw std::runtime_error(std::string(name) +
                             " source: no stream endpoint configured; set detector.endpoint to "
                             "the detector's stream, e.g. tcp://dcu-host:9999 (v1) or "
                             "tcp://dcu-host:31001 (v2)");
  if (config_.receive_hwm < 0)
    throw std::runtime_error(std::string(name) + " source: receive_hwm must be >= 0");
  const char* verb = config_.bind ? "bind" : "connect";
  try {
    socket_.set(zmq::sockopt::rcvhwm, config_.receive_hwm);
    socket_.set(zmq::sockopt::maxmsgsize, dectris_part_limit(config_));
    socket_.set(zmq::sockopt::linger, 0);
    if (config_.bind) socket_.bind(config_.endpoint);
    else {
      socket_.connect(config_.endpoint);
      keeper_.connected_to(config_.endpoint);
    }
  } catch (const zmq::error_t& e) {
    throw std::runtime_error(std::string(name) + " source: cannot " + verb + " to '" +
                             config_.endpoint + "': " + e.what() +
                             (e.num() == EADDRINUSE ? "; another process is bound to it"
                                                    : "; expected tcp://host:port"));
  }
  parts_.resize(kMaxParts);
  log::info("frame_source_ready",
            {{"source", name},
             {"mode", verb},
             {"endpoint", bound_endpoint()},
             {"receive_hwm", config_.receive_hwm},
             {"expected_rows", config_.expected_rows},
             {"expected_cols", config_.expected_cols},
             {"expected_dtype", config_.expected_dtype ? to_string(*config_.expected_dtype) : "any"},
             {"first_frame_id", config_.first_frame_id},
             {"session", map_.session_id()}});
}

std::string DectrisStreamSource::bound_endpoint() const {
  return socket_.get(zmq::sockopt::last_endpoint);
}

Status DectrisStreamSource::positions_issued(const ScanRequest& request) {
  return map_.issue(request.sub_sequence, request.first_frame_index, request.positions_A);
}

Status DectrisStreamSource::reject(std::string_view counter, std::string message) {
  health_.reject(counter, message);
  return invalid_argument(std::move(message));
}

Status DectrisStreamSource::receive(DetectorFrame* frame, std::chrono::milliseconds timeout) {
  try {
    keeper_.check(health_);
    const auto deadline = Clock::now() + timeout;
    while (true) {
      if (config_.protocol == dectris::Protocol::kV1 && !pending_.empty()) {
        if (const std::size_t n = complete_pending(); n > 0) {
          std::vector<std::span<const std::byte>> spans;
          for (std::size_t i = 0; i < n; ++i)
            spans.emplace_back(static_cast<const std::byte*>(pending_[i].part.data()),
                               pending_[i].part.size());
          Status status = handle_v1(spans, frame);
          pop_pending(n);
          if (status.ok()) {
            frame->received_ns = pending_received_ns_;
            health_.increment(counters::kFramesReceivedOk);
            return status;
          }
          if (status.code() == StatusCode::kUnavailable && Clock::now() < deadline) continue;
          return status;
        }
      }
      const long wait_ms = std::max<long>(
          0, static_cast<long>(std::chrono::ceil<std::chrono::milliseconds>(deadline - Clock::now())
                                   .count()));
      zmq_pollitem_t item{socket_.handle(), 0, ZMQ_POLLIN, 0};
      const int ready = zmq_poll(&item, 1, wait_ms);
      if (ready < 0) {
        if (zmq_errno() == ETERM)
          return failed_precondition("the ZMQ context is shut down; no more frames will arrive");
        return {StatusCode::kUnavailable, "waiting for a frame was interrupted"};
      }
      if (ready == 0 || !socket_.recv(parts_[0], zmq::recv_flags::dontwait))
        return {StatusCode::kUnavailable, "no frame arrived within " + std::to_string(timeout.count()) +
                                              " ms on " + config_.endpoint};
      const std::uint64_t received_ns = steady_now_ns();
      // Drain the whole message first, so that a rejected one leaves the socket at the next.
      part_count_ = 1;
      zmq::message_t dropped;
      for (bool more = parts_[0].more(); more; ++part_count_) {
        zmq::message_t& target = part_count_ < kMaxParts ? parts_[part_count_] : dropped;
        if (!socket_.recv(target, zmq::recv_flags::dontwait)) break;
        more = target.more();
      }
      Status status = handle(frame);
      if (status.ok()) {
        frame->received_ns = received_ns;
        health_.increment(counters::kFramesReceivedOk);
        return status;
      }
      // A series header or end: consumed; wait for a frame in what is left of the timeout.
      if (status.code() == StatusCode::kUnavailable) {
        if (Clock::now() >= deadline) return status;
        continue;
      }
      return status;
    }
  } catch (const zmq::error_t& e) {
    if (e.num() == ETERM)
      return failed_precondition("the ZMQ context is shut down; no more frames will arrive");
    return {StatusCode::kInternal, std::string("receiving a frame failed: ") + e.what()};
  } catch (const std::exception& e) {  // std::bad_alloc, in practice
    return {StatusCode::kInternal, std::string("receiving a frame failed: ") + e.what()};
  }
}

Status DectrisStreamSource::handle(DetectorFrame* frame) {
  if (config_.protocol == dectris::Protocol::kV2) {
    if (part_count_ != 1)
      return reject(counters::kDectrisV2WrongPartCount,
                    "a v2 message of " + std::to_string(part_count_) +
                        " parts; stream v2 sends each CBOR message as one part");
    std::string_view counter;
    const Status parsed = dectris::parse_v2(
        {static_cast<const std::byte*>(parts_[0].data()), parts_[0].size()}, &message_, &counter);
    if (!parsed.ok()) return reject(counter, "rejected a message: " + parsed.message());
    return dispatch(frame);
  }
  if (part_count_ > kMaxParts)
    return reject(counters::kDectrisV1WrongPartCount,
                  "a v1 message of " + std::to_string(part_count_) +
                      " parts; no DECTRIS message has more than 9");
  std::span<const std::byte> spans[kMaxParts];
  for (std::size_t i = 0; i < part_count_; ++i)
    spans[i] = {static_cast<const std::byte*>(parts_[i].data()), parts_[i].size()};
  const bool starts = dectris::v1_starts_message(spans[0]);
  auto keep = [&] {
    for (std::size_t i = 0; i < part_count_; ++i) {
      // Before the move: a small part lives inside its zmq::message_t, which the span points to.
      const bool starts_one = i == 0 ? starts : dectris::v1_starts_message(spans[i]);
      pending_.push_back({std::move(parts_[i]), starts_one});
    }
    pending_received_ns_ = steady_now_ns();
  };
  if (!pending_.empty() && !starts) {
    // The rest of a message that came split: joined in receive() once it is whole.
    keep();
    return {StatusCode::kUnavailable, "part of a message; waiting for the rest"};
  }
  if (!pending_.empty()) {
    // A new message before the pending one had all its parts: that one is rejected (counted,
    // logged), and this message is handled on its own.
    // (receive() ran complete_pending() before this message: the front is incomplete, and no
    // part after it starts a message.)
    const std::size_t n = pending_.size();
    std::vector<std::span<const std::byte>> partial;
    for (const PendingPart& p : pending_)
      partial.emplace_back(static_cast<const std::byte*>(p.part.data()), p.part.size());
    std::string_view counter;
    dectris::Message rejected;
    if (const Status s = dectris::parse_v1(partial, &rejected, &counter); !s.ok())
      health_.reject(counter, "rejected a message: " + s.message());
    pop_pending(n);
  }
  if (starts && dectris::v1_message_parts(spans[0]) > part_count_) {
    keep();
    return {StatusCode::kUnavailable, "the first parts of a message; waiting for the rest"};
  }
  return handle_v1({spans, part_count_}, frame);
}

Status DectrisStreamSource::handle_v1(std::span<const std::span<const std::byte>> parts,
                                      DetectorFrame* frame) {
  std::string_view counter;
  const Status parsed = dectris::parse_v1(parts, &message_, &counter);
  if (!parsed.ok()) return reject(counter, "rejected a message: " + parsed.message());
  return dispatch(frame);
}

std::size_t DectrisStreamSource::complete_pending() {
  while (!pending_.empty()) {
    std::size_t next = 1;  // the next part that starts a message
    while (next < pending_.size() && !pending_[next].starts) ++next;
    const std::span<const std::byte> first(static_cast<const std::byte*>(pending_[0].part.data()),
                                           pending_[0].part.size());
    const std::size_t need = dectris::v1_message_parts(first);
    // Whole (an appendix, or extra parts, are for parse_v1 to judge), or not what we know.
    if (need == 0 || next >= need) {
      if (next <= kMaxParts) return next;
      health_.reject(counters::kDectrisV1WrongPartCount,
                     "a v1 message of " + std::to_string(next) +
                         " parts; no DECTRIS message has more than 9");
      pop_pending(next);
      continue;
    }
    if (next == pending_.size()) return 0;  // waiting for the rest
    std::vector<std::span<const std::byte>> partial;
    for (std::size_t i = 0; i < next; ++i)
      partial.emplace_back(static_cast<const std::byte*>(pending_[i].part.data()),
                           pending_[i].part.size());
    std::string_view counter;
    dectris::Message rejected;
    if (const Status s = dectris::parse_v1(partial, &rejected, &counter); !s.ok())
      health_.reject(counter, "rejected a message: " + s.message());
    pop_pending(next);
  }
  return 0;
}

void DectrisStreamSource::pop_pending(std::size_t count) {
  for (std::size_t i = 0; i < count && !pending_.empty(); ++i) pending_.pop_front();
}

Status DectrisStreamSource::dispatch(DetectorFrame* frame) {
  const std::uint64_t series = message_.series_id;
  switch (message_.kind) {
    case dectris::MessageKind::kSeriesStart:
      if (!series_) {
        series_ = series;
        next_frame_ = 0;
        health_.increment(counters::kDectrisSeriesStarted);
        std::size_t bad_pixels = 0;
        for (std::uint32_t v : message_.pixel_mask) bad_pixels += v != 0;
        if (bad_pixels > 0) {
          auto weights = std::make_shared<std::vector<float>>(message_.pixel_mask.size(), 1.0f);
          for (std::size_t i = 0; i < message_.pixel_mask.size(); ++i)
            if (message_.pixel_mask[i] != 0) (*weights)[i] = 0.0f;
          detector_mask_ = std::move(weights);
        }
        log::info("dectris_series_started",
                  {{"series", series},
                   {"header_detail", message_.header_detail},
                   {"pixel_mask", message_.pixel_mask.empty() ? "none" : "in the header"},
                   {"bad_pixels", bad_pixels},
                   {"session", map_.session_id()}});
      } else if (*series_ != series) {
        return reject(counters::kDectrisStaleSeries,
                      "series header of series " + std::to_string(series) + " while series " +
                          std::to_string(*series_) + " belongs to this session; discarded");
      }
      return {StatusCode::kUnavailable, "a series header, not a frame"};
    case dectris::MessageKind::kSeriesEnd:
      if (!series_ || *series_ != series)
        return reject(
            counters::kDectrisStaleSeries,
            "end of series " + std::to_string(series) + ", which is not this session's; discarded");
      health_.increment(counters::kDectrisSeriesEnded);
      log::info("dectris_series_ended", {{"series", series}, {"frames_expected_next", next_frame_}});
      return {StatusCode::kUnavailable, "a series end, not a frame"};
    case dectris::MessageKind::kImage:
      return handle_image(message_.image, frame);
  }
  return {StatusCode::kInternal, "unknown message kind"};
}

Status DectrisStreamSource::handle_image(const dectris::Image& image, DetectorFrame* frame) {
  const std::string which =
      "frame " + std::to_string(image.frame_id) + " of series " + std::to_string(image.series_id);
  if (!series_)
    return reject(counters::kDectrisStaleSeries,
                  which +
                      " arrived before this session's series header: a detector still "
                      "streaming an earlier acquisition? Discarded");
  if (image.series_id != *series_)
    return reject(counters::kDectrisStaleSeries, which + " is not of this session's series " +
                                                     std::to_string(*series_) + "; discarded");
  if (image.frame_id < config_.first_frame_id)
    return reject(counters::kDectrisFrameNotIssued,
                  which + " is numbered below the first frame id " +
                      std::to_string(config_.first_frame_id) + " (detector.first_frame_id)");
  const std::uint64_t index = image.frame_id - config_.first_frame_id;
  const std::optional<ScanPlace> place = map_.find(index);
  if (!place)
    return reject(counters::kDectrisFrameNotIssued,
                  which + " has no scan position: " + std::to_string(map_.issued()) +
                      " frames have been issued so far; discarded");

  std::string_view counter;
  if (Status s = dectris::decode_image(image, config_.expected_rows, config_.expected_cols,
                                       config_.expected_dtype, frame, &counter);
      !s.ok())
    return reject(counter, "rejected " + s.message());
  if (image.extra_channels > 0)
    health_.increment(counters::kDectrisExtraChannelsIgnored, image.extra_channels);

  if (index > next_frame_) {
    const std::uint64_t missing = index - next_frame_;
    health_.increment(counters::kDectrisFrameGaps);
    health_.increment(counters::kDectrisFramesMissing, missing);
    const std::string text =
        "DECTRIS frames " + id_range(next_frame_ + config_.first_frame_id, image.frame_id - 1) +
        " of series " + std::to_string(*series_) + " never arrived (" + std::to_string(missing) +
        " lost: frame " + std::to_string(image.frame_id) + " followed frame " +
        (next_frame_ == 0 ? std::string("none") : std::to_string(next_frame_ - 1 + config_.first_frame_id)) +
        "); frames are placed by their own number, so nothing was shifted";
    log::error("dectris_frame_gap", {{"series", *series_}, {"missing", missing}, {"error", text}});
    if (!fault_reported_ && on_fault_) on_fault_(text);
    fault_reported_ = true;
    next_frame_ = index + 1;
  } else if (index == next_frame_) {
    ++next_frame_;
  }

  frame->session_id = map_.session_id();
  frame->sub_sequence = place->sub_sequence;
  frame->frame_index = index;
  frame->position_index = place->position_index;
  frame->position_A = place->position_A;
  frame->detector_mask = detector_mask_;
  frame->electrons_per_frame = 0.0;  // the detector does not know the dose
  frame->timestamp_ns = wall_now_ns();  // DECTRIS times are relative to the series start
  return Status::Ok();
}

}  // namespace ptypilot
