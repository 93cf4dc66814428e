// The control socket: a ZMQ REP socket served by a thread of its own. Each request's bytes go to
// `answer`, on this thread (the daemon answers status and stop here, and hands configure and
// start to its event loop); the reply goes back to the client. A REQ client that sent several
// parts gets an answer to the first. A request over ZMQ_MAXMSGSIZE never arrives: libzmq drops
// its connection.
#pragma once

#include <atomic>
#include <functional>
#include <optional>
#include <string>
#include <thread>
#include <zmq.hpp>

#include "ptypilot/wire/curve_keys.hpp"

namespace ptypilot {

class ControlServer {
 public:
  // user_id: the ZAP handler's name for the client's key (zap_authenticator.hpp); empty
  // without CURVE.
  using Answer = std::function<std::string(const std::string& request, const std::string& user_id)>;

  // Binds `endpoint`, a CURVE server with `curve`'s secret key if given; throws zmq::error_t
  // when it cannot.
  ControlServer(zmq::context_t& context, const std::string& endpoint,
                const std::optional<CurveKeyPair>& curve = std::nullopt);
  ~ControlServer() { stop(); }
  std::string bound_endpoint() const { return bound_; }

  // Serves on a new thread until stop(). `answer` may return an empty string when the daemon is
  // shutting down; then no reply is sent.
  void start(Answer answer);
  void stop();

 private:
  void serve();

  zmq::socket_t socket_;
  std::string bound_;
  Answer answer_;
  std::atomic<bool> stopping_{false};
  std::thread thread_;
};

}  // namespace ptypilot
