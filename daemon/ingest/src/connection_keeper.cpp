#include "ptypilot/ingest/connection_keeper.hpp"

#include <atomic>
#include <cstdint>
#include <cstring>

#include "ptypilot/wire/counters.hpp"
#include "ptypilot/wire/log.hpp"

namespace ptypilot {

ConnectionKeeper::ConnectionKeeper(zmq::context_t& context, zmq::socket_t& socket)
    : socket_(socket), monitor_(context, zmq::socket_type::pair) {
  static std::atomic<std::uint64_t> next{0};
  const std::string address = "inproc://ptypilot-frame-monitor-" + std::to_string(next++);
  if (zmq_socket_monitor(socket_.handle(), address.c_str(), ZMQ_EVENT_DISCONNECTED) != 0)
    throw zmq::error_t();
  monitor_.set(zmq::sockopt::linger, 0);
  monitor_.connect(address);
}

void ConnectionKeeper::check(HealthCounters& health) {
  try {
    zmq::message_t event, address;
    while (monitor_.recv(event, zmq::recv_flags::dontwait)) {
      while (event.more() && monitor_.recv(address, zmq::recv_flags::dontwait) && address.more()) {
      }
      std::uint16_t id = 0;
      if (event.size() >= sizeof id) std::memcpy(&id, event.data(), sizeof id);
      if (id != ZMQ_EVENT_DISCONNECTED) continue;
      health.reject(counters::kFrameStreamDisconnects,
                    "a connection of the frame stream ended: the detector went away, or sent a "
                    "message larger than the frame shape allows" +
                        std::string(endpoint_.empty() ? "" : "; connecting again"));
      if (endpoint_.empty()) continue;
      // Whether libzmq would retry by itself (a peer that went away) or not (a protocol error),
      // a fresh connect leaves exactly one connection that retries until the detector is back.
      try {
        socket_.disconnect(endpoint_);
      } catch (const zmq::error_t&) {  // ENOENT: libzmq already forgot it
      }
      socket_.connect(endpoint_);
    }
  } catch (const zmq::error_t& e) {
    log::error("frame_stream_monitor_failed", {{"error", e.what()}});
  }
}

}  // namespace ptypilot
