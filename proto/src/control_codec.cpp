#include "ptypilot/wire/control_codec.hpp"

#include <google/protobuf/stubs/logging.h>

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
  if (const std::string why = check_json_text(bytes, kControlJsonLimits); !why.empty())
    throw std::invalid_argument(why);
  wire::ControlRequest request;
  try {
    const auto j = nlohmann::json::parse(bytes);
    if (!j.is_object()) throw std::invalid_argument("a JSON request must be an object");
    const std::string command = j.value("command", "");
    if (command == "configure") request.mutable_configure()->set_config_json(j.at("config").dump());
    else if (command == "start") request.mutable_start()->set_session_id(j.value("session_id", ""));
    else if (command == "stop") request.mutable_stop()->set_session_token(j.value("session_token", ""));
    else if (command == "status") request.mutable_status();
    else if (command == "get_reconstruction") request.mutable_get_reconstruction();
    else
      throw std::invalid_argument("unknown command '" + command +
                                  "': use configure, start, stop, status, get_reconstruction");
  } catch (const nlohmann::json::exception& e) {
    // The text is checked UTF-8, so quoting it is safe; its length is not: keep the message short.
    std::string what = e.what();
    if (what.size() > 300) what = what.substr(0, valid_utf8_prefix(what.substr(0, 300))) + "...";
    throw std::invalid_argument(what);
  }
  return request;
}

wire::ControlRequest decode_control_request(const std::string& bytes) {
  if (bytes.size() > kMaxControlRequestBytes)
    throw std::invalid_argument("control request of " + std::to_string(bytes.size()) +
                                " bytes exceeds the limit of " +
                                std::to_string(kMaxControlRequestBytes) + " bytes");
  wire::ControlRequest request;
  if (is_json_request(bytes)) {
    request = parse_json_request(bytes);
  } else if (google::protobuf::LogSilencer quiet; !request.ParseFromString(bytes)) {
    // Silenced: libprotobuf logs each string field of invalid UTF-8 to stderr, which a client
    // could flood; the reply and control_requests_malformed say it instead.
    throw std::invalid_argument(
        "control request is neither a ControlRequest protobuf nor a JSON object");
  }
  // proto3 parsing checks a string field's UTF-8, but not what JSON is in it.
  if (request.has_configure()) {
    if (const std::string why = check_json_text(request.configure().config_json(),
                                                kConfigJsonLimits);
        !why.empty())
      throw std::invalid_argument("configure: config: " + why);
  }
  if (valid_utf8_prefix(request.start().session_id()) != request.start().session_id().size())
    throw std::invalid_argument("start: session_id is not valid UTF-8");
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
                                                                     st.counters().end())},
                   {"orphaned_journals", std::vector<std::string>(st.orphaned_journals().begin(),
                                                                  st.orphaned_journals().end())}};
    nlohmann::json warnings = nlohmann::json::array();
    for (const auto& w : st.warnings())
      warnings.push_back({{"code", w.code()},
                          {"message", w.message()},
                          {"detail", nlohmann::json::parse(w.detail_json(), nullptr, false)}});
    j["status"]["warnings"] = std::move(warnings);
  }
  if (!reply.session_token().empty()) j["session_token"] = reply.session_token();
  if (reply.has_reconstruction()) {
    const auto& r = reply.reconstruction();
    std::vector<float> data(static_cast<std::size_t>(r.rows()) * r.cols());
    std::memcpy(data.data(), r.data().data(), data.size() * sizeof(float));
    j["reconstruction"] = {{"rows", r.rows()}, {"cols", r.cols()}, {"pixel_A", r.pixel_a()},
                           {"phase_rad", data}};
  }
  // The error may quote a client's config (a key path, a value): replace what is not UTF-8
  // rather than throw.
  return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

}  // namespace ptypilot
