#include "event_publisher.hpp"

#include <chrono>

#include "ptypilot/wire/log.hpp"

namespace ptypilot {
namespace {

std::uint64_t wall_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

}  // namespace

EventPublisher::EventPublisher(zmq::context_t& context, const std::string& endpoint,
                               const std::optional<CurveKeyPair>& curve)
    : socket_(context, zmq::socket_type::pub) {
  socket_.set(zmq::sockopt::linger, 0);
  if (curve) make_curve_server(socket_, *curve);
  socket_.set(zmq::sockopt::maxmsgsize, std::int64_t{64} << 10);  // it reads subscriptions only
  socket_.bind(endpoint);
  bound_ = socket_.get(zmq::sockopt::last_endpoint);
}

void EventPublisher::publish(const wire::Event& event, const char* topic) {
  std::string bytes;
  event.SerializeToString(&bytes);
  socket_.send(zmq::buffer(std::string(topic)), zmq::send_flags::sndmore);
  socket_.send(zmq::buffer(bytes), zmq::send_flags::none);
}

void EventPublisher::sub_sequence_done(const std::string& session_id, const SubSequenceReport& r) {
  wire::Event e;
  e.set_session_id(session_id);
  e.set_timestamp_ns(wall_ns());
  auto* s = e.mutable_sub_sequence_done();
  s->set_sub_sequence(r.sub_sequence);
  s->set_positions(r.positions);
  s->set_frames_received(r.frames_received);
  auto* l = s->mutable_latency();
  l->set_reconstruct_ms(r.latency.reconstruct_ms);
  l->set_policy_ms(r.latency.policy_ms);
  l->set_safety_ms(r.latency.safety_ms);
  l->set_driver_ms(r.latency.driver_ms);
  l->set_total_ms(r.latency.total_ms);
  l->set_live_page_cpu_ms(r.latency.live_page_cpu_ms);
  publish(e, "sub_sequence_done");
  log::info("sub_sequence_done",
            {{"session", session_id}, {"sub_sequence", r.sub_sequence}, {"positions", r.positions},
             {"reconstruct_ms", r.latency.reconstruct_ms}, {"policy_ms", r.latency.policy_ms},
             {"safety_ms", r.latency.safety_ms}, {"driver_ms", r.latency.driver_ms},
             {"total_ms", r.latency.total_ms}});
}

void EventPublisher::warning(const std::string& session_id, const SessionWarning& w) {
  wire::Event e;
  e.set_session_id(session_id);
  e.set_timestamp_ns(wall_ns());
  auto* out = e.mutable_warning();
  out->set_code(w.code);
  out->set_message(w.message);
  out->set_detail_json(w.detail_json);
  publish(e, "warning");
}

void EventPublisher::session_done(const std::string& session_id, bool ok, const std::string& error,
                                  const SessionTotals& totals) {
  wire::Event e;
  e.set_session_id(session_id);
  e.set_timestamp_ns(wall_ns());
  auto* d = e.mutable_session_done();
  d->set_ok(ok);
  d->set_error(error);
  d->set_sub_sequences(totals.sub_sequences);
  d->set_positions_issued(totals.positions_issued);
  d->set_frames_recorded(totals.frames_recorded);
  d->set_output_path(totals.output_path);
  publish(e, "session_done");
}

}  // namespace ptypilot
