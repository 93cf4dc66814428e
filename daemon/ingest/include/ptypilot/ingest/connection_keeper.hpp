// ConnectionKeeper: keeps a frame source's socket connected after libzmq drops a connection.
//
// A frame source's socket has ZMQ_MAXMSGSIZE set (frame_part_limit): libzmq reads a message
// part's size before its bytes and drops the connection of a peer that sends a larger one, so the
// message never takes memory. But on the connecting side libzmq treats that as a protocol error
// and does not reconnect: one oversized message would end the stream for good. The keeper
// watches the socket's disconnections (a socket monitor) and, for a connecting source, connects
// again; a bound source needs nothing, since the detector reconnects to it. Each disconnection
// is counted (frame_stream_disconnects): a detector that went away, or one that sent a message
// larger than the configured frame shape allows.
#pragma once

#include <string>
#include <zmq.hpp>

#include "ptypilot/core/health.hpp"

namespace ptypilot {

class ConnectionKeeper {
 public:
  // Call before `socket` binds or connects. `socket` and `context` must outlive the keeper;
  // used on the socket's thread only.
  ConnectionKeeper(zmq::context_t& context, zmq::socket_t& socket);
  // `endpoint` as given to connect(); empty for a bound socket.
  void connected_to(std::string endpoint) { endpoint_ = std::move(endpoint); }
  // Handles the disconnections since the last call; never blocks, never throws.
  void check(HealthCounters& health);

 private:
  zmq::socket_t& socket_;
  zmq::socket_t monitor_;
  std::string endpoint_;
};

}  // namespace ptypilot
