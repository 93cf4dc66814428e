// The daemon's events on a ZMQ PUB socket: topic part, then a serialized wire::Event. Used from
// the event loop only (a ZMQ socket belongs to one thread).
#pragma once

#include <optional>
#include <string>
#include <zmq.hpp>

#include "ptypilot.pb.h"
#include "ptypilot/core/session.hpp"
#include "ptypilot/wire/curve_keys.hpp"

namespace ptypilot {

struct SessionTotals {
  std::uint32_t sub_sequences = 0;
  std::uint64_t positions_issued = 0;
  std::uint64_t frames_recorded = 0;
  std::string output_path;
};

class EventPublisher {
 public:
  // Binds `endpoint`, a CURVE server with `curve`'s secret key if given (subscribers are then
  // checked like control clients); throws zmq::error_t when it cannot.
  EventPublisher(zmq::context_t& context, const std::string& endpoint,
                 const std::optional<CurveKeyPair>& curve = std::nullopt);
  std::string bound_endpoint() const { return bound_; }

  void sub_sequence_done(const std::string& session_id, const SubSequenceReport& report);
  void session_done(const std::string& session_id, bool ok, const std::string& error,
                    const SessionTotals& totals);
  void warning(const std::string& session_id, const SessionWarning& warning);

 private:
  void publish(const wire::Event& event, const char* topic);

  zmq::socket_t socket_;
  std::string bound_;
};

}  // namespace ptypilot
