#include "ptypilot/wire/control_codec.hpp"

#include <cstring>
#include <map>
#include <nlohmann/json.hpp>
#include <stdexcept>
#include <vector>

namespace ptypilot {

using wire::ControlReply;

const char* state_name(ControlReply::State s) {
  switch (s) {
    case ControlReply::IDLE: return "idle";
    case ControlReply::CONFIGURED: return "configured";
    case ControlReply::RUNNING: return "running";
    case ControlReply::FINISHING: return "finishing";
    case ControlReply::ERROR: return "error";
    default: return "unspecified";
  }
}

bool is_json_request(const std::string& bytes) { return !bytes.empty() && bytes.front() == '{'; }

wire::ControlRequest parse_json_request(const std::string& bytes) {
  wire::ControlRequest request;
  try {
    const auto j = nlohmann::json::parse(bytes);
    const std::string command = j.value("command", "");
    if (command == "configure") request.mutable_configure()->set_config_json(j.at("config").dump());
    else if (command == "start") request.mutable_start()->set_session_id(j.value("session_id", ""));
    else if (command == "stop") request.mutable_stop();
    else if (command == "status") request.mutable_status();
    else if (command == "get_reconstruction") request.mutable_get_reconstruction();
    else
      throw std::invalid_argument("unknown command '" + command +
                                  "': use configure, start, stop, status, get_reconstruction");
  } catch (const nlohmann::json::exception& e) {
    throw std::invalid_argument(e.what());
  }
  return request;
}

std::string reply_to_json(const ControlReply& reply) {
  nlohmann::json j = {{"ok", reply.ok()}, {"error", reply.error()}, {"state", state_name(reply.state())}};
  if (reply.has_status()) {
    const auto& st = reply.status();
    j["status"] = {{"session_id", st.session_id()},
                   {"sub_sequence", st.sub_sequence()},
                   {"frames_received", st.frames_received()},
                   {"frames_recorded", st.frames_recorded()},
                   {"positions_issued", st.positions_issued()},
                   {"counters", std::map<std::string, std::uint64_t>(st.counters().begin(),
                                                                     st.counters().end())}};
    nlohmann::json warnings = nlohmann::json::array();
    for (const auto& w : st.warnings())
      warnings.push_back({{"code", w.code()},
                          {"message", w.message()},
                          {"detail", nlohmann::json::parse(w.detail_json(), nullptr, false)}});
    j["status"]["warnings"] = std::move(warnings);
  }
  if (reply.has_reconstruction()) {
    const auto& r = reply.reconstruction();
    std::vector<float> data(static_cast<std::size_t>(r.rows()) * r.cols());
    std::memcpy(data.data(), r.data().data(), data.size() * sizeof(float));
    j["reconstruction"] = {{"rows", r.rows()}, {"cols", r.cols()}, {"pixel_A", r.pixel_a()},
                           {"phase_rad", data}};
  }
  return j.dump();
}

}  // namespace ptypilot
