#include "ptypilot/ingest/merlin_source.hpp"

#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstring>
#include <stdexcept>

#include "ptypilot/ingest/frame_clock.hpp"
#include "ptypilot/ingest/zmq_frame_source.hpp"
#include "ptypilot/wire/counters.hpp"
#include "ptypilot/wire/log.hpp"

namespace ptypilot {
namespace {

using Clock = std::chrono::steady_clock;

int remaining_ms(Clock::time_point deadline) {
  const auto left = std::chrono::ceil<std::chrono::milliseconds>(deadline - Clock::now()).count();
  return static_cast<int>(std::clamp<long long>(left, 0, 1 << 30));
}

std::string id_range(std::uint64_t first, std::uint64_t last) {
  return first == last ? std::to_string(first)
                       : std::to_string(first) + ".." + std::to_string(last);
}

// A non-blocking TCP connection to host:port within `timeout`; -1 and *why when there is none.
int connect_tcp(const std::string& host, int port, std::chrono::milliseconds timeout,
                std::string* why) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* found = nullptr;
  const std::string service = std::to_string(port);
  if (const int rc = ::getaddrinfo(host.c_str(), service.c_str(), &hints, &found); rc != 0) {
    *why = std::string("cannot resolve: ") + ::gai_strerror(rc);
    return -1;
  }
  const auto deadline = Clock::now() + timeout;
  int fd = -1;
  for (addrinfo* a = found; a && fd < 0; a = a->ai_next) {
    fd = ::socket(a->ai_family, a->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, a->ai_protocol);
    if (fd < 0) continue;
    int rc = ::connect(fd, a->ai_addr, a->ai_addrlen);
    if (rc != 0 && errno == EINPROGRESS) {
      pollfd p{fd, POLLOUT, 0};
      rc = ::poll(&p, 1, remaining_ms(deadline));
      int error = 0;
      socklen_t size = sizeof error;
      if (rc == 1 && ::getsockopt(fd, SOL_SOCKET, SO_ERROR, &error, &size) == 0 && error == 0) {
        rc = 0;
      } else {
        *why = rc == 0 ? "no answer in time" : std::strerror(error ? error : errno);
        rc = -1;
      }
    } else if (rc != 0) {
      *why = std::strerror(errno);
    }
    if (rc != 0) {
      ::close(fd);
      fd = -1;
    }
  }
  ::freeaddrinfo(found);
  if (fd >= 0) {
    const int one = 1;
    ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  }
  return fd;
}

}  // namespace

bool parse_tcp_endpoint(const std::string& endpoint, std::string* host, int* port) {
  if (!endpoint.starts_with("tcp://")) return false;
  const std::string address = endpoint.substr(6);
  const auto colon = address.rfind(':');
  if (colon == std::string::npos || colon == 0) return false;
  int value = 0;
  const char* first = address.data() + colon + 1;
  const char* last = address.data() + address.size();
  const auto [end, ec] = std::from_chars(first, last, value);
  if (ec != std::errc() || end != last || value <= 0 || value > 65535) return false;
  *host = address.substr(0, colon);
  if (host->size() > 2 && host->front() == '[' && host->back() == ']')
    *host = host->substr(1, host->size() - 2);
  *port = value;
  return true;
}

// --- MerlinLink --------------------------------------------------------------------------------

MerlinLink::~MerlinLink() { close(); }

void MerlinLink::close() {
  if (fd_ >= 0) ::close(fd_);
  fd_ = -1;
}

bool MerlinLink::connect(std::chrono::milliseconds timeout) {
  if (fd_ >= 0) return true;
  std::string why;
  fd_ = connect_tcp(host_, port_, timeout, &why);
  if (fd_ >= 0) {
    clear_pending();  // a new connection: what was left of the old one is no message
    log::info("merlin_data_connected", {{"address", address()}});
  }
  return fd_ >= 0;
}

bool MerlinLink::read(std::chrono::milliseconds timeout, bool* closed) {
  *closed = false;
  const auto deadline = Clock::now() + timeout;
  if (fd_ < 0) {
    // Not more often than every 100 ms: a Merlin that is down must not be hammered.
    const auto now = Clock::now();
    if (now < next_attempt_) {
      pollfd none{-1, 0, 0};
      ::poll(&none, 0, std::min(remaining_ms(deadline), remaining_ms(next_attempt_)));
      if (Clock::now() < next_attempt_) return false;
    }
    next_attempt_ = Clock::now() + std::chrono::milliseconds(100);
    if (!connect(std::chrono::milliseconds(std::max(1, remaining_ms(deadline))))) return false;
  }
  pollfd p{fd_, POLLIN, 0};
  const int ready = ::poll(&p, 1, remaining_ms(deadline));
  if (ready <= 0) return false;
  if (offset_ > 0) {  // once per read, not per message
    buffer_.erase(buffer_.begin(), buffer_.begin() + static_cast<std::ptrdiff_t>(offset_));
    offset_ = 0;
  }
  const std::size_t old = buffer_.size();
  constexpr std::size_t kChunk = 1 << 20;
  buffer_.resize(old + kChunk);
  const ssize_t n = ::recv(fd_, buffer_.data() + old, kChunk, 0);
  if (n > 0) {
    buffer_.resize(old + static_cast<std::size_t>(n));
    return true;
  }
  buffer_.resize(old);
  if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) return false;
  close();
  *closed = true;
  return false;
}

void MerlinLink::consume(std::size_t n) {
  offset_ = std::min(buffer_.size(), offset_ + n);
  if (offset_ == buffer_.size()) clear_pending();
}

std::size_t MerlinLink::discard_arrived() {
  std::size_t dropped = pending().size();
  clear_pending();
  bool closed = false;
  while (fd_ >= 0 && read(std::chrono::milliseconds(0), &closed)) {
    dropped += pending().size();
    clear_pending();
  }
  return dropped;
}

// --- control -----------------------------------------------------------------------------------

std::vector<std::string> MerlinSource::control(
    const std::string& host, int port, const std::vector<std::vector<std::string>>& requests,
    std::chrono::milliseconds timeout) {
  const std::string where = "Merlin control " + host + ":" + std::to_string(port);
  const auto name = [](const std::vector<std::string>& f) {
    return f.size() > 1 ? f[0] + " " + f[1] : f.empty() ? std::string("?") : f[0];
  };
  std::string why;
  const int fd = connect_tcp(host, port, timeout, &why);
  if (fd < 0)
    throw std::runtime_error(where + ": cannot connect (" + why + ") to send " +
                             name(requests.at(0)));
  struct Closer {
    int fd;
    ~Closer() { ::close(fd); }
  } closer{fd};
  std::vector<std::string> reply;
  std::vector<std::byte> answer;
  // One connection for the whole sequence, each request answered before the next goes, as the
  // Merlin software expects of a client.
  for (const std::vector<std::string>& fields : requests) {
    const std::string what = name(fields);
    const auto deadline = Clock::now() + timeout;
    const std::string request = merlin::control_message(fields);
    for (std::size_t sent = 0; sent < request.size();) {
      pollfd p{fd, POLLOUT, 0};
      if (::poll(&p, 1, remaining_ms(deadline)) != 1)
        throw std::runtime_error(where + ": " + what + " could not be sent in time");
      const ssize_t n = ::send(fd, request.data() + sent, request.size() - sent, MSG_NOSIGNAL);
      if (n < 0 && errno != EAGAIN && errno != EINTR)
        throw std::runtime_error(where + ": sending " + what + ": " + std::strerror(errno));
      if (n > 0) sent += static_cast<std::size_t>(n);
    }
    std::uint64_t length = 0;
    while (true) {
      std::string bad;
      const merlin::PrefixStatus s = merlin::read_prefix(answer, &length, &bad);
      if (s == merlin::PrefixStatus::kBad)
        throw std::runtime_error(where + ": a garbled answer to " + what + ": " + bad);
      if (s == merlin::PrefixStatus::kOk && answer.size() >= merlin::kPrefixBytes + length) break;
      if (answer.size() > merlin::kMaxHeaderBytes)
        throw std::runtime_error(where + ": an answer to " + what + " longer than 64 KiB");
      pollfd p{fd, POLLIN, 0};
      if (::poll(&p, 1, remaining_ms(deadline)) != 1)
        throw std::runtime_error(where + ": no answer to " + what + " within " +
                                 std::to_string(timeout.count()) + " ms");
      char chunk[4096];
      const ssize_t n = ::recv(fd, chunk, sizeof chunk, 0);
      if (n == 0)
        throw std::runtime_error(where + ": the connection ended before the answer to " + what);
      if (n < 0) {
        if (errno == EAGAIN || errno == EINTR) continue;
        throw std::runtime_error(where + ": reading the answer to " + what + ": " +
                                 std::strerror(errno));
      }
      const auto* b = reinterpret_cast<const std::byte*>(chunk);
      answer.insert(answer.end(), b, b + n);
    }
    const std::string body(reinterpret_cast<const char*>(answer.data()) + merlin::kPrefixBytes + 1,
                           length - 1);
    answer.erase(answer.begin(), answer.begin() + static_cast<std::ptrdiff_t>(merlin::kPrefixBytes + length));
    reply = merlin::split_body(body);
    int status = -1;
    if (!reply.empty())
      std::from_chars(reply.back().data(), reply.back().data() + reply.back().size(), status);
    if (status != 0)
      throw std::runtime_error(where + ": " + what + " refused: status " + std::to_string(status) +
                               " (" + std::string(merlin::status_meaning(status)) +
                               "), answer \"" + body + "\"");
  }
  return reply;
}

// --- MerlinSource ------------------------------------------------------------------------------

MerlinSource::MerlinSource(std::shared_ptr<MerlinLink> link, const MerlinSourceConfig& config,
                           std::string session_id, StreamFaultHandler on_fault)
    : link_(std::move(link)), config_(config), map_(std::move(session_id)),
      on_fault_(std::move(on_fault)) {
  if (config_.control_port > 0) {
    // The acquisition header goes to the connected client: connect before arming. What arrived
    // before the arm is an earlier acquisition's; a connection that turns out to have ended
    // while the daemon was idle is made again.
    std::size_t stale = 0;
    for (int attempt = 0; attempt < 2; ++attempt) {
      if (!link_->connect(config_.timeout))
        throw std::runtime_error("merlin source: cannot connect to the Merlin's data port " +
                                 link_->address() + " within " +
                                 std::to_string(config_.timeout.count()) +
                                 " ms; is the Merlin software running (detector.endpoint)?");
      stale += link_->discard_arrived();
    }
    if (stale > 0)
      log::warn("merlin_stale_data_dropped",
                {{"bytes", stale}, {"note", "sent before this session armed the Merlin"}});
    const std::string frames = std::to_string(std::max<std::uint64_t>(1, config_.frames_per_acquisition));
    std::vector<std::vector<std::string>> requests = {{"SET", "NUMFRAMESTOACQUIRE", frames}};
    if (config_.trigger_start >= 0)
      requests.push_back({"SET", "TRIGGERSTART", std::to_string(config_.trigger_start)});
    requests.push_back({"CMD", "STARTACQUISITION"});
    control(config_.host, config_.control_port, requests, config_.timeout);
    armed_ = true;
  }
  log::info("frame_source_ready",
            {{"source", "merlin"},
             {"endpoint", link_->address()},
             {"control_port", config_.control_port},
             {"armed_frames", armed_ ? config_.frames_per_acquisition : 0},
             {"expected_rows", config_.expected_rows},
             {"expected_cols", config_.expected_cols},
             {"expected_dtype", config_.expected_dtype ? to_string(*config_.expected_dtype) : "any"},
             {"session", map_.session_id()}});
}

MerlinSource::~MerlinSource() {
  if (!armed_ || (config_.frames_per_acquisition > 0 && received_ >= config_.frames_per_acquisition))
    return;
  // The acquisition still waits for triggers: stop it, so that the next session's arm is not
  // refused as busy.
  try {
    control(config_.host, config_.control_port, {{"CMD", "STOPACQUISITION"}}, config_.timeout);
  } catch (const std::exception& e) {
    log::warn("merlin_stop_failed", {{"error", e.what()}});
  }
}

Status MerlinSource::positions_issued(const ScanRequest& request) {
  const std::uint64_t frames = acquisition_frames_.load();
  const std::uint64_t end = request.first_frame_index + request.positions_A.size();
  if (frames > 0 && end > frames)
    return failed_precondition("the Merlin's acquisition has " + std::to_string(frames) +
                               " frames (its acquisition header's Frames in Acquisition), but "
                               "this sub-sequence would make " + std::to_string(end) +
                               "; its last positions would never be imaged");
  return map_.issue(request.sub_sequence, request.first_frame_index, request.positions_A);
}

Status MerlinSource::reject(std::string_view counter, std::string message) {
  health_.reject(counter, message);
  return invalid_argument(std::move(message));
}

Status MerlinSource::receive(DetectorFrame* frame, std::chrono::milliseconds timeout) {
  try {
    const auto deadline = Clock::now() + timeout;
    while (true) {
      bool need_more = false;
      Status s = next_message(frame, &need_more);
      if (s.ok()) {
        frame->received_ns = steady_now_ns();
        health_.increment(counters::kFramesReceivedOk);
        return s;
      }
      if (!need_more && s.code() != StatusCode::kUnavailable) return s;  // rejected, counted
      if (!need_more) continue;  // a header: go on within the timeout
      if (Clock::now() >= deadline)
        return {StatusCode::kUnavailable, "no frame arrived within " +
                                              std::to_string(timeout.count()) + " ms from " +
                                              link_->address()};
      bool closed = false;
      const std::size_t partial = link_->pending().size();
      if (!link_->read(std::chrono::milliseconds(remaining_ms(deadline)), &closed) && closed) {
        link_->clear_pending();
        skip_ = 0;
        health_.reject(counters::kFrameStreamDisconnects,
                       "the Merlin's data connection ended; connecting again");
        if (partial > 0)
          return reject(counters::kMerlinTruncated,
                        "the Merlin's data connection ended inside a message (" +
                            std::to_string(partial) + " bytes of it arrived); discarded");
      }
    }
  } catch (const std::exception& e) {  // std::bad_alloc, in practice
    return {StatusCode::kInternal, std::string("receiving a frame failed: ") + e.what()};
  }
}

Status MerlinSource::next_message(DetectorFrame* frame, bool* need_more) {
  std::span<const std::byte> buffer = link_->pending();
  auto consume = [this, &buffer](std::size_t n) {
    link_->consume(n);
    buffer = link_->pending();
  };
  if (skip_ > 0) {
    const std::size_t n = std::min<std::size_t>(static_cast<std::size_t>(skip_), buffer.size());
    consume(n);
    skip_ -= static_cast<std::int64_t>(n);
    if (skip_ > 0 || buffer.empty()) {
      *need_more = true;
      return {StatusCode::kUnavailable, "skipping"};
    }
  }
  // The largest message of the configured shape (any: 4096 x 4096): its pixels as uint32, and
  // the largest header. A longer one of a length a frame can have (a larger detector) is skipped
  // by its length; a length no frame has is a corrupt prefix, and the stream resumes at the
  // next "MPX,".
  const std::uint64_t pixels =
      config_.expected_rows > 0 && config_.expected_cols > 0
          ? static_cast<std::uint64_t>(config_.expected_rows) * config_.expected_cols
          : kMaxFramePixels;
  const std::uint64_t limit = pixels * 4 + merlin::kMaxHeaderBytes + 1;
  const merlin::Split split = merlin::split_message(buffer, limit);
  using Kind = merlin::Split::Kind;
  switch (split.kind) {
    case Kind::kNeedMore:
      *need_more = true;
      return {StatusCode::kUnavailable, "waiting for a message"};
    case Kind::kBadFraming:
    case Kind::kBadLength:
      consume(split.consume);
      return reject(split.kind == Kind::kBadFraming ? counters::kMerlinBadFraming
                                                    : counters::kMerlinBadLength,
                    "Merlin data: " + split.why + "; skipped " + std::to_string(split.consume) +
                        " bytes to the next \"MPX,\"");
    case Kind::kTooLong:
      consume(split.consume);
      skip_ = static_cast<std::int64_t>(split.skip_after);
      return reject(counters::kMerlinBadLength,
                    "Merlin data: " + split.why + ", the most a frame of the configured shape "
                    "can be; skipped");
    case Kind::kMessage:
      break;
  }
  const std::span<const std::byte> body = split.body;
  const std::string_view text(reinterpret_cast<const char*>(body.data()), std::min<std::size_t>(body.size(), 4));
  Status s;
  if (text == "HDR,") {
    s = handle_header(std::string_view(reinterpret_cast<const char*>(body.data()), body.size()));
  } else if (text == "MQ1,") {
    s = handle_frame(body, frame);
  } else {
    s = reject(counters::kMerlinUnknownMessage,
               "Merlin data: a message that is neither an acquisition header (HDR) nor a frame "
               "(MQ1): \"" +
                   std::string(text) + "...\"; discarded");
  }
  consume(split.consume);
  return s;
}

Status MerlinSource::handle_header(std::string_view text) {
  const merlin::AcquisitionHeader h = merlin::parse_acquisition_header(text);
  const std::uint64_t frames =
      h.frames_in_acquisition && *h.frames_in_acquisition > 0 ? static_cast<std::uint64_t>(*h.frames_in_acquisition) : 0;
  if (have_acquisition_ && received_ > 0 && !aborted_) {
    const std::uint64_t expected = acquisition_frames_.load();
    // Aborted: issued frames never came, or the acquisition's own count was not reached (the
    // session's next positions would never be imaged).
    if ((expected > 0 && received_ < expected) || next_frame_ < map_.issued()) {
      // The data channel does not say that an acquisition ended: a new one started, so this one
      // was aborted (or restarted) on the Merlin.
      const std::uint64_t issued = map_.issued();
      const std::uint64_t missing = issued > next_frame_ ? issued - next_frame_ : 0;
      aborted_ = true;
      health_.increment(counters::kMerlinAcquisitionsAborted);
      health_.increment(counters::kMerlinFramesMissing, missing);
      const std::string message =
          "the Merlin started a new acquisition (an acquisition header arrived) after " +
          std::to_string(received_) + " frame(s) of this session's: its acquisition was aborted "
          "on the Merlin" +
          (missing > 0 ? "; frames " + id_range(next_frame_ + 1, issued) + " of the " +
                             std::to_string(issued) + " issued never arrived (" +
                             std::to_string(missing) + " lost)"
                       : std::string()) +
          "; the frames received are recorded";
      log::error("merlin_acquisition_aborted", {{"missing", missing}, {"error", message}});
      if (!fault_reported_ && on_fault_) on_fault_(message);
      fault_reported_ = true;
      return {StatusCode::kUnavailable, "an acquisition header, not a frame"};
    }
  }
  if (aborted_ || finished_) return {StatusCode::kUnavailable, "an acquisition header after the session's"};
  if (have_acquisition_ && received_ > 0) {
    // The session's acquisition got all its frames; a later one is not this session's, and
    // neither are its frames.
    finished_ = true;
    log::info("merlin_acquisition_after_session", {{"session", map_.session_id()}});
    return {StatusCode::kUnavailable, "an acquisition header after the session's acquisition"};
  }
  // Before the session's first frame the latest header is its acquisition's (an earlier one was
  // an acquisition that never produced a frame).
  have_acquisition_ = true;
  acquisition_frames_ = frames;
  health_.increment(counters::kMerlinAcquisitionsStarted);
  log::info("merlin_acquisition_started",
            {{"frames_in_acquisition", frames},
             {"counter_depth", h.counter_depth ? *h.counter_depth : 0},
             {"session", map_.session_id()}});
  return {StatusCode::kUnavailable, "an acquisition header, not a frame"};
}

Status MerlinSource::handle_frame(std::span<const std::byte> body, DetectorFrame* frame) {
  std::string why;
  const std::optional<merlin::FrameHeader> h = merlin::parse_frame_header(body, &why);
  if (!h) return reject(counters::kMerlinMalformedHeader, "Merlin frame: " + why + "; discarded");
  const std::string which = "Merlin frame " + std::to_string(h->number);
  const std::optional<PixelType> dtype = merlin::pixel_type_of(h->depth);
  if (!dtype)
    return reject(counters::kFramesBadDtype,
                  which + ": pixel depth '" + h->depth +
                      "' is not supported (U08, U16, U32; raw R64 keeps the chip's readout "
                      "order: turn raw mode off); discarded");
  const std::uint64_t pixel_bytes =
      static_cast<std::uint64_t>(h->width) * static_cast<std::uint64_t>(h->height) * pixel_size(*dtype);
  if (h->header_bytes + pixel_bytes != body.size())
    return reject(counters::kMerlinSizeMismatch,
                  which + ": the message holds " + std::to_string(body.size()) + " bytes, but a " +
                      std::to_string(h->header_bytes) + "-byte header and " +
                      std::to_string(h->width) + " x " + std::to_string(h->height) + " " +
                      h->depth + " pixels need " + std::to_string(h->header_bytes + pixel_bytes) +
                      "; discarded");
  if (!have_acquisition_ || aborted_ || finished_)
    return reject(counters::kMerlinNoAcquisition,
                  which + (aborted_    ? " arrived after this session's acquisition was aborted; "
                                         "discarded"
                           : finished_ ? " is of an acquisition after this session's, which had "
                                         "all its frames; discarded"
                                       : " arrived before any acquisition header: a Merlin still "
                                         "sending an earlier acquisition? Discarded"));
  if (h->number == 0)
    return reject(counters::kMerlinFrameNotIssued,
                  which + ": Merlin frame numbers count from 1; discarded");
  const std::uint64_t index = h->number - 1;
  const std::optional<ScanPlace> place = map_.find(index);
  if (!place)
    return reject(counters::kMerlinFrameNotIssued,
                  which + " has no scan position: " + std::to_string(map_.issued()) +
                      " frames have been issued so far; discarded");
  if ((config_.expected_rows != 0 && h->height != config_.expected_rows) ||
      (config_.expected_cols != 0 && h->width != config_.expected_cols))
    return reject(counters::kFramesWrongShape,
                  which + ": its shape is " + std::to_string(h->height) + " x " +
                      std::to_string(h->width) + " but the detector is configured as " +
                      std::to_string(config_.expected_rows) + " x " +
                      std::to_string(config_.expected_cols) + "; discarded");
  if (config_.expected_dtype && *dtype != *config_.expected_dtype)
    return reject(counters::kFramesDtypeMismatch,
                  which + ": its type is " + to_string(*dtype) + " (" + h->depth +
                      ") but the detector is configured to send " +
                      to_string(*config_.expected_dtype) + " (detector.dtype); discarded");

  if (index > next_frame_) {
    const std::uint64_t missing = index - next_frame_;
    health_.increment(counters::kMerlinFrameGaps);
    health_.increment(counters::kMerlinFramesMissing, missing);
    const std::string text =
        "Merlin frames " + id_range(next_frame_ + 1, h->number - 1) + " never arrived (" +
        std::to_string(missing) + " lost: frame " + std::to_string(h->number) + " followed " +
        (next_frame_ == 0 ? std::string("the acquisition header") : "frame " + std::to_string(next_frame_)) +
        "); frames are placed by their own number, so nothing was shifted";
    log::error("merlin_frame_gap", {{"missing", missing}, {"error", text}});
    if (!fault_reported_ && on_fault_) on_fault_(text);
    fault_reported_ = true;
    next_frame_ = index + 1;
  } else if (index == next_frame_) {
    ++next_frame_;
  }
  ++received_;

  frame->session_id = map_.session_id();
  frame->sub_sequence = place->sub_sequence;
  frame->frame_index = index;
  frame->position_index = place->position_index;
  frame->position_A = place->position_A;
  frame->rows = h->height;
  frame->cols = h->width;
  frame->dtype = *dtype;
  frame->electrons_per_frame = 0.0;  // the detector does not know the dose
  frame->exposure_s = 0.0;
  frame->timestamp_ns = wall_now_ns();
  frame->bitshuffle_lz4.clear();
  frame->counts.resize(static_cast<std::size_t>(h->width) * static_cast<std::size_t>(h->height));
  merlin::decode_pixels(body.subspan(h->header_bytes), *dtype, frame->counts.data());
  return Status::Ok();
}

}  // namespace ptypilot
