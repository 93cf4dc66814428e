// `ptypilot ctl`: the command-line client of the control socket. Every reply is printed as one
// JSON object; the exit code is 0 when the daemon said ok.
#include <chrono>
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>
#include <optional>
#include <sstream>
#include <thread>
#include <zmq.hpp>

#include "ptypilot.pb.h"
#include "ptypilot/wire/command.hpp"
#include "ptypilot/wire/control_codec.hpp"
#include "ptypilot/wire/curve_keys.hpp"
#include "ptypilot/wire/npy.hpp"

namespace ptypilot {
namespace {

// --server-key FILE (the daemon's NAME.key) and --client-key FILE (ours, NAME.key_secret): both,
// or neither (README, Security).
struct ClientKeys {
  std::string server_public;
  CurveKeyPair client;
};

std::optional<ClientKeys> client_keys(const CliArgs& args) {
  if (args.get("server-key").empty() != args.get("client-key").empty())
    throw UsageError("CURVE needs both --server-key (the daemon's NAME.key) and --client-key "
                     "(your NAME.key_secret)");
  if (args.get("server-key").empty()) return std::nullopt;
  ClientKeys keys{read_curve_key_file(args.get("server-key")).public_key,
                  read_curve_key_file(args.get("client-key"))};
  if (keys.client.secret_key.empty())
    throw std::runtime_error(args.get("client-key") + " holds no secret key: give your "
                             "NAME.key_secret");
  return keys;
}

// The socket as a CURVE client when keys are given.
void secure(zmq::socket_t& socket, const std::optional<ClientKeys>& keys) {
  if (keys) make_curve_client(socket, keys->server_public, keys->client);
}

class ControlClient {
 public:
  ControlClient(std::string endpoint, std::chrono::milliseconds timeout,
                std::optional<ClientKeys> keys)
      : endpoint_(std::move(endpoint)), timeout_(timeout), keys_(std::move(keys)) {}

  wire::ControlReply call(const wire::ControlRequest& request) {
    zmq::socket_t socket(context_, zmq::socket_type::req);
    socket.set(zmq::sockopt::linger, 0);
    secure(socket, keys_);
    // A connection the daemon dropped (a refused CURVE handshake, a request over its size limit)
    // leaves the REQ socket without a peer, and a plain send would wait for one for ever.
    socket.set(zmq::sockopt::sndtimeo, static_cast<int>(timeout_.count()));
    socket.connect(endpoint_);
    const auto no_answer = [&] {
      return std::runtime_error("no answer from " + endpoint_ + " within " +
                                std::to_string(timeout_.count()) +
                                " ms: is `ptypilot serve` running? (With CURVE, a key it does not "
                                "authorize gets no answer either.)");
    };
    if (!socket.send(zmq::buffer(request.SerializeAsString()), zmq::send_flags::none))
      throw no_answer();
    zmq::pollitem_t items[] = {{socket.handle(), 0, ZMQ_POLLIN, 0}};
    zmq::poll(items, 1, timeout_);
    if (!(items[0].revents & ZMQ_POLLIN)) throw no_answer();
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
  std::optional<ClientKeys> keys_;
};

std::string read_file(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw std::runtime_error("cannot read " + path);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

// The daemon's own JSON form of the reply (control_codec.hpp), without the image: that went
// to the .npy file.
int print(wire::ControlReply reply) {
  reply.clear_reconstruction();
  std::cout << reply_to_json(reply) << std::endl;
  return reply.ok() ? 0 : 1;
}

ControlClient client(const CliArgs& args) {
  return ControlClient(args.get("endpoint"),
                       std::chrono::milliseconds(static_cast<long>(args.get_double("timeout-s") * 1000)),
                       client_keys(args));
}

// The commands that send one request and print its reply.
template <typename Fill>
Command request_command(std::string name, std::string summary, std::vector<PositionalSpec> positionals,
                        Fill fill) {
  return {.name = std::move(name),
          .summary = std::move(summary),
          .positionals = std::move(positionals),
          .run = [fill](const CliArgs& args) {
            wire::ControlRequest request;
            fill(args, request);
            return print(client(args).call(request));
          }};
}

int save_reconstruction(const CliArgs& args) {
  wire::ControlRequest request;
  request.mutable_get_reconstruction();
  const wire::ControlReply reply = client(args).call(request);
  if (reply.ok()) {
    const auto& r = reply.reconstruction();
    std::vector<float> data(std::size_t(r.rows()) * r.cols());
    std::memcpy(data.data(), r.data().data(), std::min(r.data().size(), data.size() * sizeof(float)));
    write_npy(args.get("FILE.npy"), data, {r.rows(), r.cols()});
  }
  return print(reply);
}

// Exit 0 when the session ended idle, 1 in error, 3 when it still runs after SECONDS.
int wait_for_session(const CliArgs& args) {
  const double limit_s = args.get_double("SECONDS");
  ControlClient control = client(args);
  const auto until = std::chrono::steady_clock::now() + std::chrono::duration<double>(limit_s);
  wire::ControlRequest request;
  request.mutable_status();
  while (true) {
    const wire::ControlReply reply = control.call(request);
    const auto s = reply.state();
    if (s != wire::ControlReply::RUNNING && s != wire::ControlReply::FINISHING) {
      std::cout << reply_to_json(reply) << std::endl;
      return s == wire::ControlReply::ERROR ? 1 : 0;
    }
    if (std::chrono::steady_clock::now() > until) {
      std::cout << reply_to_json(reply) << std::endl;
      std::cerr << "ptypilot ctl wait: session still running after " << limit_s << " s\n";
      return 3;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
}

int print_events(const CliArgs& args) {
  const long count = args.has("COUNT") ? args.get_int("COUNT") : -1;
  zmq::context_t context{1};
  zmq::socket_t sub(context, zmq::socket_type::sub);
  sub.set(zmq::sockopt::subscribe, "");
  secure(sub, client_keys(args));
  sub.connect(args.get("events"));
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
    } else if (e.has_warning()) {
      const auto& w = e.warning();
      j["code"] = w.code();
      j["message"] = w.message();
      j["detail"] = nlohmann::json::parse(w.detail_json(), nullptr, false);
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

}  // namespace

Command ctl_command() {
  using Request = wire::ControlRequest;
  return {
      .name = "ctl",
      .summary = "the control client of serve: configure, start, stop, status, wait, ...",
      .description =
          "The control client of `ptypilot serve`. Every reply is printed as one JSON object; the "
          "exit code is 0 when the daemon said ok.",
      .options = {{"endpoint", "EP", "tcp://127.0.0.1:5600", "the daemon's control socket"},
                  {"events", "EP", "tcp://127.0.0.1:5603", "the daemon's event socket (for `events`)"},
                  {"timeout-s", "S", "30", "how long to wait for each reply"},
                  {"server-key", "FILE", "",
                   "CURVE: the daemon's public key file (NAME.key; README, Security)"},
                  {"client-key", "FILE", "",
                   "CURVE: your key pair file (NAME.key_secret, ptypilot keygen)"}},
      .subcommands = {
          request_command("configure", "send a JSON config file", {{.name = "FILE", .help = "the config"}},
                          [](const CliArgs& args, Request& r) {
                            r.mutable_configure()->set_config_json(read_file(args.get("FILE")));
                          }),
          request_command("start", "start a session; the reply's session_token stops it",
                          {{.name = "SESSION_ID", .required = false,
                            .help = "the session's id (default: one is made up)"}},
                          [](const CliArgs& args, Request& r) {
                            r.mutable_start()->set_session_id(args.get("SESSION_ID"));
                          }),
          request_command("stop", "stop after the sub-sequence in flight",
                          {{.name = "SESSION_TOKEN", .required = false,
                            .help = "the session_token of start's reply (with CURVE, what a "
                                    "controller key needs; an operator key needs none)"}},
                          [](const CliArgs& args, Request& r) {
                            r.mutable_stop()->set_session_token(args.get("SESSION_TOKEN"));
                          }),
          request_command("status", "state, counters, frames received and recorded", {},
                          [](const CliArgs&, Request& r) { r.mutable_status(); }),
          {.name = "reconstruction",
           .summary = "save the current reconstruction (float32 phase, rad)",
           .positionals = {{.name = "FILE.npy", .help = "where to write it"}},
           .run = save_reconstruction},
          {.name = "wait",
           .summary = "wait until the session is over (state idle or error); exit 3 if it is not",
           .positionals = {{.name = "SECONDS", .required = false, .fallback = "3600",
                            .help = "how long at most"}},
           .run = wait_for_session},
          {.name = "events",
           .summary = "print events from the PUB socket (--events EP) as JSON lines",
           .positionals = {{.name = "COUNT", .required = false,
                            .help = "how many (default: until interrupted)"}},
           .run = print_events}}};
}

}  // namespace ptypilot
