#include "ptypilot/scan_driver/zmq_scan_driver.hpp"

#include <algorithm>
#include <cerrno>
#include <stdexcept>
#include <utility>

#include "ptypilot.pb.h"

namespace ptypilot {

namespace {

using Clock = std::chrono::steady_clock;

// Waits until `socket` has a message or `deadline` passes. A signal (EINTR) only shortens one
// wait; it must not turn into a lost acknowledgement.
bool wait_readable(zmq::socket_t& socket, Clock::time_point deadline) {
  zmq_pollitem_t item{socket.handle(), 0, ZMQ_POLLIN, 0};
  for (;;) {
    auto left = std::chrono::ceil<std::chrono::milliseconds>(deadline - Clock::now());
    if (left.count() < 0) left = std::chrono::milliseconds{0};
    const int rc = zmq_poll(&item, 1, static_cast<long>(left.count()));
    if (rc > 0) return true;
    if (rc == 0) {
      if (Clock::now() >= deadline) return false;
      continue;
    }
    if (zmq_errno() != EINTR) throw zmq::error_t();
  }
}

wire::ScanCommand to_command(const ScanRequest& request, std::uint64_t command_id) {
  wire::ScanCommand command;
  command.set_session_id(request.session_id);
  command.set_sub_sequence(request.sub_sequence);
  command.set_dwell_s(request.dwell_s);
  command.set_command_id(command_id);
  command.set_first_frame_index(request.first_frame_index);
  command.mutable_positions()->Reserve(static_cast<int>(request.positions_A.size()));
  for (const Vec2& p : request.positions_A) {
    wire::Position* out = command.add_positions();
    out->set_y_a(p.y);
    out->set_x_a(p.x);
  }
  return command;
}

}  // namespace

ZmqScanDriver::ZmqScanDriver(zmq::context_t& context, ZmqScanDriverConfig config, std::string name)
    : context_(context), config_(std::move(config)), name_(std::move(name)) {
  if (config_.endpoint.empty()) throw std::invalid_argument(name_ + " scan driver: empty endpoint");
  if (config_.ack_timeout.count() < 0)
    throw std::invalid_argument(name_ + " scan driver: negative ack timeout");
  if (config_.retries < 0) throw std::invalid_argument(name_ + " scan driver: negative retries");
  open_socket();
}

void ZmqScanDriver::open_socket() {
  // Closing the old socket first (linger 0) discards the unanswered command, so that a generator
  // that comes back later does not receive it on a connection nobody listens to any more.
  if (socket_.handle() != nullptr) socket_.close();
  zmq::socket_t socket(context_, zmq::socket_type::req);
  socket.set(zmq::sockopt::linger, 0);
  socket.set(zmq::sockopt::maxmsgsize, std::int64_t{64} << 10);  // an acknowledgement is small
  // A REQ socket with no connected peer could block in send; bound it by the ack timeout.
  socket.set(zmq::sockopt::sndtimeo, static_cast<int>(config_.ack_timeout.count()));
  socket.connect(config_.endpoint);
  socket_ = std::move(socket);
}

Status ZmqScanDriver::submit(const ScanRequest& request) {
  if (Status s = submit_async(request); !s.ok()) return s;
  // Every attempt has its own deadline inside wait_acknowledged; this bound only makes sure the
  // loop ends if the clock misbehaves.
  const auto total = config_.ack_timeout * (1 + config_.retries) + std::chrono::seconds(1);
  return wait_acknowledged(std::chrono::duration_cast<std::chrono::milliseconds>(total));
}

Status ZmqScanDriver::submit_async(const ScanRequest& request) {
  if (pending_)
    return failed_precondition(name_ + " scan driver: command " + std::to_string(pending_->id) +
                               " is still pending; wait_acknowledged first");
  Pending p;
  p.id = next_command_id_++;
  if (!to_command(request, p.id).SerializeToString(&p.bytes))
    return {StatusCode::kInternal, "could not serialize scan command " + std::to_string(p.id)};
  pending_ = std::move(p);
  return send_pending();
}

Status ZmqScanDriver::send_pending() {
  Pending& p = *pending_;
  try {
    while (p.attempt < 1 + config_.retries) {
      ++p.attempt;
      if (socket_.handle() == nullptr) open_socket();
      p.deadline = Clock::now() + config_.ack_timeout;
      if (socket_.send(zmq::buffer(p.bytes), zmq::send_flags::none)) return Status::Ok();
      open_socket();  // not even sent within the timeout: no generator is connected
    }
  } catch (const zmq::error_t& e) {
    return end_pending(fail_on_socket(e));
  }
  return end_pending(not_acknowledged());
}

Status ZmqScanDriver::wait_acknowledged(std::chrono::milliseconds timeout) {
  if (!pending_) return failed_precondition(name_ + " scan driver: no command is pending");
  const auto until = Clock::now() + timeout;
  try {
    for (;;) {
      Pending& p = *pending_;
      const auto deadline = std::min(until, p.deadline);
      if (wait_readable(socket_, deadline)) return end_pending(read_ack());
      if (Clock::now() >= until && until < p.deadline)
        return {StatusCode::kUnavailable, "scan generator at " + config_.endpoint +
                                              " has not yet acknowledged command " +
                                              std::to_string(p.id) + "; it is still pending"};
      // This attempt's reply is lost: the lazy pirate opens a fresh REQ socket (this one is
      // stuck waiting for that reply) and resends while retries are left.
      open_socket();
      if (Status s = send_pending(); !s.ok() || !pending_) return s;
    }
  } catch (const zmq::error_t& e) {
    return end_pending(fail_on_socket(e));
  }
}

Status ZmqScanDriver::read_ack() {
  const std::uint64_t id = pending_->id;
  zmq::message_t reply;
  if (!socket_.recv(reply, zmq::recv_flags::none))
    return {StatusCode::kUnavailable, "scan generator at " + config_.endpoint +
                                          ": no reply to command " + std::to_string(id)};
  if (reply.more()) {
    // Drain the rest so that the REQ socket is ready for the next command.
    zmq::message_t extra;
    while (reply.more() && socket_.recv(extra, zmq::recv_flags::none)) reply.swap(extra);
    return {StatusCode::kInternal, "scan generator at " + config_.endpoint +
                                       " sent a multi-part reply to command " +
                                       std::to_string(id) + "; expected one ScanAck"};
  }
  wire::ScanAck ack;
  if (!ack.ParseFromArray(reply.data(), static_cast<int>(reply.size())))
    return {StatusCode::kInternal, "scan generator at " + config_.endpoint +
                                       " sent a reply to command " + std::to_string(id) +
                                       " that is not a ScanAck"};
  if (ack.command_id() != id)
    return {StatusCode::kInternal, "scan generator at " + config_.endpoint +
                                       " answered command " + std::to_string(id) +
                                       " with an acknowledgement of command " +
                                       std::to_string(ack.command_id())};
  if (!ack.accepted())
    return failed_precondition("scan generator at " + config_.endpoint + " refused command " +
                               std::to_string(id) + ": " +
                               (ack.error().empty() ? "(no reason given)" : ack.error()));
  return Status::Ok();
}

Status ZmqScanDriver::not_acknowledged() const {
  const int attempts = 1 + config_.retries;
  std::string message = "scan generator at " + config_.endpoint + " did not acknowledge command " +
                        std::to_string(pending_->id) + " within " +
                        std::to_string(config_.ack_timeout.count()) + " ms";
  if (attempts > 1) message += " (" + std::to_string(attempts) + " attempts)";
  return {StatusCode::kUnavailable, std::move(message)};
}

Status ZmqScanDriver::fail_on_socket(const zmq::error_t& e) {
  // Never throw on the per-decision path. Whatever state the socket was left in, the next
  // command starts on a fresh one.
  socket_.close();
  return {StatusCode::kUnavailable, "scan generator at " + config_.endpoint + ": command " +
                                        std::to_string(pending_->id) + " failed: " + e.what()};
}

Status ZmqScanDriver::end_pending(Status result) {
  pending_.reset();
  return result;
}

std::unique_ptr<ScanDriver> make_sim_stage_driver(zmq::context_t& context, std::string endpoint,
                                                  std::chrono::milliseconds ack_timeout) {
  ZmqScanDriverConfig config;
  config.endpoint = std::move(endpoint);
  config.ack_timeout = ack_timeout;
  return std::make_unique<ZmqScanDriver>(context, std::move(config), "sim-stage");
}

}  // namespace ptypilot
