#include "ptypilot/ingest/zmq_frame_source.hpp"

#include <algorithm>
#include <bit>
#include <cerrno>
#include <climits>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <limits>
#include <stdexcept>
#include <string>
#include <utility>

#include "ptypilot/ingest/frame_clock.hpp"
#include "ptypilot/wire/counters.hpp"
#include "ptypilot/wire/log.hpp"

namespace ptypilot {

// The wire is little-endian and we read and write it with memcpy. Every platform we build for
// (x86-64, aarch64) is little-endian; a big-endian port would need byte swaps here.
static_assert(std::endian::native == std::endian::little,
              "the frame wire format is little-endian; add byte swapping for this platform");
static_assert(std::numeric_limits<float>::is_iec559, "float32 payloads are IEEE 754");

namespace {

// Formats a float the way a person reads it ("nan", "-inf", "-1.5").
std::string format_value(float value) {
  char buffer[32];
  std::snprintf(buffer, sizeof buffer, "%g", static_cast<double>(value));
  return buffer;
}


std::string endpoint_hint(int error_number, bool bind) {
  switch (error_number) {
    case EINVAL:
    case EPROTONOSUPPORT:
      return "; expected transport://address, e.g. tcp://detector-host:5555, tcp://127.0.0.1:* "
             "or ipc:///tmp/ptypilot-frames";
    case EADDRINUSE:
      return "; another process (or another ptypilot) is already bound to it: stop it or choose "
             "another port";
    case EADDRNOTAVAIL:
      return bind ? "; that address is not on this machine: bind to one of its interfaces or to *"
                  : "";
    case ENODEV:
      return "; no such network interface";
    default:
      return "";
  }
}

}  // namespace

// --- ZmqFrameSource ------------------------------------------------------------------------

std::int64_t frame_part_limit(int rows, int cols, std::optional<PixelType> dtype) {
  const std::uint64_t pixels = rows > 0 && cols > 0 ? static_cast<std::uint64_t>(rows) *
                                                          static_cast<std::uint64_t>(cols)
                                                    : kMaxFramePixels;
  const std::uint64_t element = dtype ? pixel_size(*dtype) : pixel_size(PixelType::kFloat32);
  return static_cast<std::int64_t>(std::min(pixels, kMaxFramePixels) * element + (64u << 10));
}

namespace {

zmq::socket_t make_pull_socket(zmq::context_t& ctx) {
  try {
    return zmq::socket_t(ctx, zmq::socket_type::pull);
  } catch (const zmq::error_t& e) {
    throw std::runtime_error(std::string("ZmqFrameSource: cannot create a ZMQ PULL socket: ") +
                             e.what() + " (was the ZMQ context already shut down?)");
  }
}

}  // namespace

ZmqFrameSource::ZmqFrameSource(zmq::context_t& ctx, const ZmqFrameSourceConfig& config)
    : config_(config), socket_(make_pull_socket(ctx)), keeper_(ctx, socket_) {
  if (config_.endpoint.empty()) {
    throw std::runtime_error(
        "ZmqFrameSource: no frame stream endpoint configured; set it to the detector's PUSH "
        "endpoint, e.g. tcp://detector-host:5555");
  }
  if (config_.receive_hwm < 0) {
    throw std::runtime_error("ZmqFrameSource: receive_hwm is " +
                             std::to_string(config_.receive_hwm) +
                             "; it must be >= 0 (frames queued before the sender blocks; 0 = no "
                             "limit)");
  }
  if (config_.expected_rows < 0 || config_.expected_cols < 0 ||
      static_cast<std::uint64_t>(config_.expected_rows) *
              static_cast<std::uint64_t>(config_.expected_cols) >
          kMaxFramePixels) {
    throw std::runtime_error("ZmqFrameSource: expected frame shape " +
                             std::to_string(config_.expected_rows) + " x " +
                             std::to_string(config_.expected_cols) +
                             " is not usable; each must be >= 0 (0 = any) and the frame at most "
                             "4096 x 4096 pixels");
  }
  if (config_.expected_dtype && pixel_size(*config_.expected_dtype) == 0) {
    throw std::runtime_error("ZmqFrameSource: expected_dtype " +
                             std::to_string(static_cast<int>(*config_.expected_dtype)) +
                             " is not a PixelType; use uint8, uint16, uint32 or float32 (or none "
                             "to accept any)");
  }

  const char* verb = config_.bind ? "bind" : "connect";
  try {
    // Options take effect only for connections made after they are set, so before bind/connect.
    socket_.set(zmq::sockopt::rcvhwm, config_.receive_hwm);
    socket_.set(zmq::sockopt::maxmsgsize, frame_part_limit(config_.expected_rows,
                                                           config_.expected_cols,
                                                           config_.expected_dtype));
    socket_.set(zmq::sockopt::linger, 0);  // closing must never wait on the network
    if (config_.bind) {
      socket_.bind(config_.endpoint);
    } else {
      socket_.connect(config_.endpoint);
      keeper_.connected_to(config_.endpoint);
    }
  } catch (const zmq::error_t& e) {
    throw std::runtime_error("ZmqFrameSource: cannot " + std::string(verb) +
                             " the frame stream socket to '" + config_.endpoint + "': " + e.what() +
                             endpoint_hint(e.num(), config_.bind));
  }
  log::info("frame_source_ready", {{"source", "zmq"},
                                   {"mode", verb},
                                   {"endpoint", bound_endpoint()},
                                   {"receive_hwm", config_.receive_hwm},
                                   {"expected_rows", config_.expected_rows},
                                   {"expected_cols", config_.expected_cols},
                                   {"expected_dtype", config_.expected_dtype
                                                          ? to_string(*config_.expected_dtype)
                                                          : "any"}});
}

std::string ZmqFrameSource::bound_endpoint() const {
  return socket_.get(zmq::sockopt::last_endpoint);
}

Status ZmqFrameSource::reject(std::string_view counter, std::string message) {
  health_.reject(counter, message);
  return invalid_argument(std::move(message));
}

Status ZmqFrameSource::receive(DetectorFrame* frame, std::chrono::milliseconds timeout) {
  // The per-frame path must not throw into the event loop; cppzmq throws on socket errors (for
  // example ETERM at shutdown), so they are turned into a Status here.
  try {
    keeper_.check(health_);
    zmq_pollitem_t item{socket_.handle(), 0, ZMQ_POLLIN, 0};
    const long timeout_ms = std::max<long>(0, static_cast<long>(timeout.count()));
    const int ready = zmq_poll(&item, 1, timeout_ms);
    if (ready < 0) {
      const int error_number = zmq_errno();
      if (error_number == ETERM) {
        return failed_precondition("the ZMQ context is shut down; no more frames will arrive");
      }
      // EINTR (a signal) is the usual case: the caller simply polls again.
      return {StatusCode::kUnavailable,
              std::string("waiting for a frame was interrupted: ") + zmq_strerror(error_number)};
    }
    if (ready == 0 || (item.revents & ZMQ_POLLIN) == 0 ||
        !socket_.recv(header_part_, zmq::recv_flags::dontwait)) {
      return {StatusCode::kUnavailable, "no frame arrived within " + std::to_string(timeout_ms) +
                                            " ms on " + config_.endpoint};
    }
    const std::uint64_t received_ns = steady_now_ns();

    // Drain every part of this message before looking at any of it: a rejected message must
    // leave the socket at the start of the next one. ZMQ delivers a multipart message whole, so
    // the remaining parts are already here and dontwait cannot miss them.
    part_count_ = 1;
    for (bool more = header_part_.more(); more; ++part_count_) {
      zmq::message_t& target = part_count_ == 1 ? payload_part_ : extra_part_;
      if (!socket_.recv(target, zmq::recv_flags::dontwait)) break;
      more = target.more();
    }

    Status status = decode(frame);
    if (status.ok()) {
      frame->received_ns = received_ns;
      health_.increment(counters::kFramesReceivedOk);
    }
    return status;
  } catch (const zmq::error_t& e) {
    if (e.num() == ETERM) {
      return failed_precondition("the ZMQ context is shut down; no more frames will arrive");
    }
    return {StatusCode::kInternal, std::string("receiving a frame failed: ") + e.what()};
  } catch (const std::exception& e) {  // std::bad_alloc while sizing the frame, in practice
    return {StatusCode::kInternal, std::string("receiving a frame failed: ") + e.what()};
  }
}

Status ZmqFrameSource::decode(DetectorFrame* frame) {
  const bool parsed =
      header_part_.size() <= static_cast<std::size_t>(INT_MAX) &&
      header_.ParseFromArray(header_part_.data(), static_cast<int>(header_part_.size()));

  if (part_count_ != 2) {
    const std::string which =
        parsed ? " (frame_index " + std::to_string(header_.frame_index()) + ")" : "";
    return reject(counters::kFramesWrongPartCount,
                  "rejected a message of " + std::to_string(part_count_) + " part" +
                      (part_count_ == 1 ? "" : "s") + which +
                      ": a native frame is exactly 2 parts, [FrameHeader, payload]");
  }
  if (!parsed) {
    return reject(counters::kFramesMalformedHeader,
                  "rejected a frame whose header part (" + std::to_string(header_part_.size()) +
                      " bytes) is not a valid ptypilot.wire.FrameHeader; is the sender speaking "
                      "the native ptypilot protocol?");
  }

  const std::string prefix = "frame " + std::to_string(header_.frame_index()) + " rejected: ";
  if (header_.session_id().empty()) {
    return reject(counters::kFramesMissingSession,
                  prefix + "its header has no session_id, so it cannot be matched to a session");
  }

  const std::optional<PixelType> dtype = pixel_type_from_wire(header_.dtype());
  if (!dtype) {
    const std::string what =
        header_.dtype() == wire::FrameHeader::DTYPE_UNSPECIFIED
            ? std::string("DTYPE_UNSPECIFIED")
            : "unknown value " + std::to_string(static_cast<int>(header_.dtype()));
    return reject(counters::kFramesBadDtype,
                  prefix + "dtype is " + what + "; expected UINT8, UINT16, UINT32 or FLOAT32");
  }
  if (config_.expected_dtype && *dtype != *config_.expected_dtype) {
    return reject(counters::kFramesDtypeMismatch,
                  prefix + "its dtype is " + to_string(*dtype) +
                      " but the detector is configured to send " +
                      to_string(*config_.expected_dtype) + " (expected_dtype)");
  }

  const std::uint64_t rows = header_.rows();
  const std::uint64_t cols = header_.cols();
  const std::uint64_t pixels = rows * cols;  // each < 2^32, so no overflow
  const std::string shape = std::to_string(rows) + " x " + std::to_string(cols);
  if (rows == 0 || cols == 0) {
    return reject(counters::kFramesWrongShape,
                  prefix + "its shape is " + shape + "; rows and cols must both be at least 1");
  }
  if ((config_.expected_rows != 0 && rows != static_cast<std::uint64_t>(config_.expected_rows)) ||
      (config_.expected_cols != 0 && cols != static_cast<std::uint64_t>(config_.expected_cols))) {
    return reject(counters::kFramesWrongShape,
                  prefix + "its shape is " + shape + " but the detector is configured as " +
                      std::to_string(config_.expected_rows) + " x " +
                      std::to_string(config_.expected_cols) + " (0 = any)");
  }
  if (pixels > kMaxFramePixels) {
    return reject(counters::kFramesWrongShape,
                  prefix + "its shape " + shape + " is larger than the 4096 x 4096 pixels allowed");
  }

  const std::size_t element = pixel_size(*dtype);
  const std::uint64_t needed = pixels * element;
  if (header_.payload_bytes() != needed || payload_part_.size() != needed) {
    return reject(counters::kFramesPayloadSizeMismatch,
                  prefix + "its payload part is " + std::to_string(payload_part_.size()) +
                      " bytes and header.payload_bytes says " +
                      std::to_string(header_.payload_bytes()) + ", but " + shape + " " +
                      to_string(*dtype) + " pixels need " + std::to_string(needed));
  }

  // Straight from the ZMQ buffer into the frame's float storage: one pass, no staging copy.
  const std::size_t n = static_cast<std::size_t>(pixels);
  frame->counts.resize(n);
  float* out = frame->counts.data();
  const auto* in = static_cast<const std::byte*>(payload_part_.data());
  const PixelDefects defects = widen_pixels(*dtype, in, out, n);
  const auto where = [&](std::size_t i) {
    return "row " + std::to_string(i / cols) + ", col " + std::to_string(i % cols) + ": " +
           format_value(out[i]);
  };
  if (defects.non_finite != 0) {
    return reject(counters::kFramesNonFinite,
                  prefix + std::to_string(defects.non_finite) + " of " + std::to_string(n) +
                      " pixels are NaN or infinite (first at " + where(defects.first_non_finite) +
                      "); counts must be finite");
  }
  if (defects.negative != 0) {
    return reject(counters::kFramesNegative,
                  prefix + std::to_string(defects.negative) + " of " + std::to_string(n) +
                      " pixels are negative (first at " + where(defects.first_negative) +
                      "); counts must be >= 0");
  }

  frame->session_id = header_.session_id();
  frame->sub_sequence = header_.sub_sequence();
  frame->frame_index = header_.frame_index();
  frame->position_index = header_.position_index();
  frame->position_A = Vec2{header_.y_a(), header_.x_a()};
  frame->rows = static_cast<int>(rows);
  frame->cols = static_cast<int>(cols);
  frame->dtype = *dtype;
  frame->electrons_per_frame = header_.electrons_per_frame();
  frame->exposure_s = header_.exposure_s();
  frame->timestamp_ns = header_.timestamp_ns();
  return Status::Ok();
}

}  // namespace ptypilot
