// libzmq's ZAP handler (RFC 27) for the CURVE sockets of one ZMQ context: the control and event
// sockets ask it about every client that connects, before a message of that client is read.
// It accepts the authorized keys and names each with the User-Id "ROLE:NAME", which every message
// of that connection then carries (zmq_msg_gets(message, "User-Id")); it refuses every other key,
// and libzmq closes such a connection without an answer.
//
// It must be bound before a CURVE socket of the context binds: libzmq lets CURVE clients in
// unchecked when no handler is bound. Its socket lives on its own thread.
#pragma once

#include <atomic>
#include <functional>
#include <map>
#include <string>
#include <thread>
#include <vector>
#include <zmq.hpp>

#include "ptypilot/wire/curve_keys.hpp"

namespace ptypilot {

class ZapAuthenticator {
 public:
  // on_refused(why): runs on the handler's thread for each refused client.
  ZapAuthenticator(zmq::context_t& context, const std::vector<AuthorizedKey>& keys,
                   std::function<void(const std::string& why)> on_refused);
  ~ZapAuthenticator();

  // The role in a message's User-Id, as this handler wrote it; observer for anything else.
  static Role role_of(const std::string& user_id);

 private:
  void serve();
  void answer(std::vector<zmq::message_t>& request);

  zmq::socket_t socket_;
  std::map<std::string, std::string> user_ids_;  // binary public key -> "ROLE:NAME"
  std::function<void(const std::string&)> on_refused_;
  std::atomic<bool> stopping_{false};
  std::thread thread_;
};

}  // namespace ptypilot
