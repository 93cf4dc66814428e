#include "control_server.hpp"

#include <chrono>

#include "ptypilot/wire/json_guard.hpp"

namespace ptypilot {

ControlServer::ControlServer(zmq::context_t& context, const std::string& endpoint,
                             const std::optional<CurveKeyPair>& curve)
    : socket_(context, zmq::socket_type::rep) {
  socket_.set(zmq::sockopt::linger, 0);
  if (curve) make_curve_server(socket_, *curve);
  // A request larger than any the daemon accepts (1 MiB of JSON, or a protobuf carrying that
  // config) is dropped by libzmq with its connection, before it takes memory.
  socket_.set(zmq::sockopt::maxmsgsize,
              static_cast<std::int64_t>(kMaxControlRequestBytes + (64u << 10)));
  socket_.bind(endpoint);
  bound_ = socket_.get(zmq::sockopt::last_endpoint);
}

void ControlServer::start(Answer answer) {
  answer_ = std::move(answer);
  thread_ = std::thread([this] { serve(); });
}

void ControlServer::stop() {
  stopping_ = true;
  if (thread_.joinable()) thread_.join();
}

void ControlServer::serve() {
  while (!stopping_) {
    zmq::pollitem_t items[] = {{socket_.handle(), 0, ZMQ_POLLIN, 0}};
    zmq::poll(items, 1, std::chrono::milliseconds(100));
    if (!(items[0].revents & ZMQ_POLLIN)) continue;
    zmq::message_t message;
    if (!socket_.recv(message)) continue;
    while (socket_.get(zmq::sockopt::rcvmore)) {  // a REQ peer sends one part; drop extras
      zmq::message_t extra;
      (void)socket_.recv(extra);
    }
    const char* user_id = zmq_msg_gets(message.handle(), "User-Id");  // null without CURVE
    const std::string reply = answer_(message.to_string(), user_id ? user_id : "");
    if (stopping_) return;
    socket_.send(zmq::buffer(reply), zmq::send_flags::none);
  }
}

}  // namespace ptypilot
