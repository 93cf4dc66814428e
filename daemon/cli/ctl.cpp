// `ptypilot ctl`: the command-line client of the control socket. Every reply is printed as one
// JSON object; the exit code is 0 when the daemon said ok.
#include <chrono>
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <thread>
#include <zmq.hpp>

#include "ptypilot.pb.h"
#include "ptypilot/wire/npy.hpp"

namespace ptypilot {
namespace {

constexpr const char* kCtlUsage = R"(usage: ptypilot ctl [--endpoint E] [--timeout-s S] COMMAND
commands:
  configure FILE          send a JSON config file
  start [SESSION_ID]      start a session (an id is made up if none is given)
  stop                    stop after the sub-sequence in flight
  status                  state, counters, frames received and recorded
  reconstruction FILE.npy save the current reconstruction (float32 phase, rad)
  wait [SECONDS]          wait until the session is over (state idle or error)
  events [COUNT]          print events from the PUB socket (--events E) as JSON lines
)";

std::string state_text(int s) {
  return wire::ControlReply::State_Name(static_cast<wire::ControlReply::State>(s));
}

nlohmann::json reply_json(const wire::ControlReply& r) {
  const auto& s = r.status();
  nlohmann::json j = {{"ok", r.ok()}, {"state", state_text(r.state())}};
  if (!r.error().empty()) j["error"] = r.error();
  j["status"] = {{"session_id", s.session_id()}, {"sub_sequence", s.sub_sequence()},
                 {"frames_received", s.frames_received()}, {"frames_recorded", s.frames_recorded()},
                 {"positions_issued", s.positions_issued()},
                 {"counters", std::map<std::string, std::uint64_t>(s.counters().begin(), s.counters().end())}};
  return j;
}

class ControlClient {
 public:
  ControlClient(std::string endpoint, std::chrono::milliseconds timeout)
      : endpoint_(std::move(endpoint)), timeout_(timeout) {}

  wire::ControlReply call(const wire::ControlRequest& request) {
    zmq::socket_t socket(context_, zmq::socket_type::req);
    socket.set(zmq::sockopt::linger, 0);
    socket.connect(endpoint_);
    socket.send(zmq::buffer(request.SerializeAsString()), zmq::send_flags::none);
    zmq::pollitem_t items[] = {{socket.handle(), 0, ZMQ_POLLIN, 0}};
    zmq::poll(items, 1, timeout_);
    if (!(items[0].revents & ZMQ_POLLIN))
      throw std::runtime_error("no answer from " + endpoint_ + " within " +
                               std::to_string(timeout_.count()) + " ms: is `ptypilot serve` running?");
    zmq::message_t message;
    (void)socket.recv(message);
    wire::ControlReply reply;
    if (!reply.ParseFromArray(message.data(), static_cast<int>(message.size())))
      throw std::runtime_error("malformed reply from " + endpoint_);
    return reply;
  }

 private:
  zmq::context_t context_{1};
  std::string endpoint_;
  std::chrono::milliseconds timeout_;
};

std::string read_file(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw std::runtime_error("cannot read " + path);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

int print(const wire::ControlReply& reply) {
  std::cout << reply_json(reply).dump() << std::endl;
  return reply.ok() ? 0 : 1;
}

}  // namespace

int run_ctl(const std::vector<std::string>& args) {
  std::string endpoint = "tcp://127.0.0.1:5600";
  std::string events = "tcp://127.0.0.1:5603";
  double timeout_s = 30;
  std::size_t i = 0;
  for (; i < args.size() && args[i].rfind("--", 0) == 0; i += 2) {
    if (i + 1 >= args.size()) throw std::invalid_argument(args[i] + " needs a value");
    if (args[i] == "--endpoint") endpoint = args[i + 1];
    else if (args[i] == "--events") events = args[i + 1];
    else if (args[i] == "--timeout-s") timeout_s = std::stod(args[i + 1]);
    else throw std::invalid_argument("unknown option " + args[i] + "\n" + kCtlUsage);
  }
  if (i >= args.size()) {
    std::cerr << kCtlUsage;
    return 2;
  }
  const std::string command = args[i];
  const std::vector<std::string> rest(args.begin() + i + 1, args.end());
  ControlClient client(endpoint, std::chrono::milliseconds(static_cast<long>(timeout_s * 1000)));
  wire::ControlRequest request;

  if (command == "configure") {
    if (rest.size() != 1) throw std::invalid_argument("usage: ptypilot ctl configure FILE");
    request.mutable_configure()->set_config_json(read_file(rest[0]));
    return print(client.call(request));
  }
  if (command == "start") {
    request.mutable_start()->set_session_id(rest.empty() ? "" : rest[0]);
    return print(client.call(request));
  }
  if (command == "stop") {
    request.mutable_stop();
    return print(client.call(request));
  }
  if (command == "status") {
    request.mutable_status();
    return print(client.call(request));
  }
  if (command == "reconstruction") {
    if (rest.size() != 1) throw std::invalid_argument("usage: ptypilot ctl reconstruction FILE.npy");
    request.mutable_get_reconstruction();
    const wire::ControlReply reply = client.call(request);
    if (reply.ok()) {
      const auto& r = reply.reconstruction();
      std::vector<float> data(std::size_t(r.rows()) * r.cols());
      std::memcpy(data.data(), r.data().data(), std::min(r.data().size(), data.size() * sizeof(float)));
      write_npy(rest[0], data, {r.rows(), r.cols()});
    }
    return print(reply);
  }
  if (command == "wait") {
    const double limit_s = rest.empty() ? 3600 : std::stod(rest[0]);
    const auto until = std::chrono::steady_clock::now() + std::chrono::duration<double>(limit_s);
    request.mutable_status();
    while (true) {
      const wire::ControlReply reply = client.call(request);
      const auto s = reply.state();
      if (s != wire::ControlReply::RUNNING && s != wire::ControlReply::FINISHING) {
        std::cout << reply_json(reply).dump() << std::endl;
        return s == wire::ControlReply::ERROR ? 1 : 0;
      }
      if (std::chrono::steady_clock::now() > until) {
        std::cout << reply_json(reply).dump() << std::endl;
        std::cerr << "ptypilot ctl wait: session still running after " << limit_s << " s\n";
        return 3;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
  }
  if (command == "events") {
    const long count = rest.empty() ? -1 : std::stol(rest[0]);
    zmq::context_t context{1};
    zmq::socket_t sub(context, zmq::socket_type::sub);
    sub.set(zmq::sockopt::subscribe, "");
    sub.connect(events);
    for (long n = 0; count < 0 || n < count; ++n) {
      zmq::message_t topic, body;
      (void)sub.recv(topic);
      (void)sub.recv(body);
      wire::Event e;
      e.ParseFromArray(body.data(), static_cast<int>(body.size()));
      nlohmann::json j = {{"topic", topic.to_string()}, {"session_id", e.session_id()}};
      if (e.has_sub_sequence_done()) {
        const auto& d = e.sub_sequence_done();
        const auto& l = d.latency();
        j["sub_sequence"] = d.sub_sequence();
        j["positions"] = d.positions();
        j["latency_ms"] = {{"reconstruct", l.reconstruct_ms()}, {"policy", l.policy_ms()},
                           {"safety", l.safety_ms()}, {"driver", l.driver_ms()}, {"total", l.total_ms()}};
      } else if (e.has_session_done()) {
        const auto& d = e.session_done();
        j["ok"] = d.ok();
        j["error"] = d.error();
        j["frames_recorded"] = d.frames_recorded();
        j["output_path"] = d.output_path();
      }
      std::cout << j.dump() << std::endl;
    }
    return 0;
  }
  throw std::invalid_argument("unknown ctl command '" + command + "'\n" + kCtlUsage);
}

}  // namespace ptypilot
