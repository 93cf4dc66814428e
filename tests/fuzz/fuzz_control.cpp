// libFuzzer target: the control path of `serve`, from the bytes of a control request to its
// reply, as the daemon runs it (daemon.cpp: handle_bytes, configure): decode_control_request
// (JSON or protobuf, with the limits of json_guard.hpp), then for a Configure the config JSON
// through nlohmann (comments allowed) and parse_serve_config, then the reply encoded back as JSON
// or protobuf. std::invalid_argument from decoding, and any std::exception from reading the
// config (a key error names its path), are the documented refusals; a crash, a sanitizer report,
// a stack overflow, an exception while encoding the reply, or a reply that is not valid UTF-8
// (for protobuf: any libprotobuf log) is a bug.
#include <google/protobuf/stubs/logging.h>

#include <cstddef>
#include <cstdint>
#include <exception>
#include <nlohmann/json.hpp>
#include <stdexcept>
#include <string>

#include "ptypilot/core/config.hpp"
#include "ptypilot/wire/control_codec.hpp"
#include "ptypilot/wire/json_guard.hpp"

using namespace ptypilot;

namespace {

// libprotobuf logs (rather than fails) when it serialises a string field that is not UTF-8:
// here any log it writes outside decode_control_request's silenced parse is a finding.
const bool kTrapOnProtobufLog = [] {
  google::protobuf::SetLogHandler(
      [](google::protobuf::LogLevel, const char*, int, const std::string&) { __builtin_trap(); });
  return true;
}();

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string bytes(reinterpret_cast<const char*>(data), size);
  wire::ControlReply reply;
  reply.set_ok(true);
  try {
    const wire::ControlRequest request = decode_control_request(bytes);
    if (request.has_configure()) {
      const std::string& text = request.configure().config_json();
      if (const std::string why = check_json_text(text, kConfigJsonLimits); !why.empty())
        throw std::invalid_argument(why);  // decode_control_request checked it already
      const ServeConfig config = parse_serve_config(nlohmann::json::parse(text, nullptr, true, true));
      reply.mutable_status()->set_session_id(config.session.preset);
    }
    if (request.has_start()) reply.mutable_status()->set_session_id(request.start().session_id());
  } catch (const std::exception& e) {
    reply.set_ok(false);
    reply.set_error(e.what());
  }
  // As handle_bytes does: an error may quote the request's bytes.
  reply.set_error(to_valid_utf8(reply.error()));
  if (valid_utf8_prefix(reply.error()) != reply.error().size()) __builtin_trap();
  // Both encodings of the reply, whatever the request was; neither may throw.
  const std::string json = reply_to_json(reply);
  if (valid_utf8_prefix(json) != json.size()) __builtin_trap();
  (void)reply.SerializeAsString();
  return 0;
}
