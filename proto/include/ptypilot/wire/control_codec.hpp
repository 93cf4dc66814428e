// The control protocol's two encodings: ControlRequest/ControlReply protobufs (proto/ptypilot.proto)
// for programs, and JSON objects for scripts. A JSON request is decoded into the same
// ControlRequest and its reply encoded from the same ControlReply, so the two cannot disagree.
#pragma once

#include <cstddef>
#include <string>

#include "ptypilot.pb.h"
#include "ptypilot/wire/json_guard.hpp"

namespace ptypilot {

// "idle", "configured", "running", "finishing", "error": the one spelling, in replies, events,
// logs and `ptypilot ctl`.
const char* state_name(wire::ControlReply::State state);

// A request starting with '{' is JSON: {"command": "configure", "config": {...}} | "start"
// (optional "session_id") | "stop" (optional "session_token") | "status" | "get_reconstruction".
// Throws
// std::invalid_argument, naming what is wrong, for JSON that is not such a request.
bool is_json_request(const std::string& bytes);
wire::ControlRequest parse_json_request(const std::string& bytes);

// Any bytes off the control socket, JSON or protobuf, checked before and while decoding: the
// size, UTF-8, the JSON's depth, and the same for the config JSON a Configure carries, so that
// what the daemon does next (parse the config, dump a reply) cannot fail on them. Throws
// std::invalid_argument with a message that is valid UTF-8 and never quotes the request's bytes;
// nothing else.
wire::ControlRequest decode_control_request(const std::string& bytes);

// The reply as JSON: ok, error, state, status (with counters), for start the session_token and,
// for get_reconstruction, the phase image (rows, cols, pixel_A, phase_rad row-major).
std::string reply_to_json(const wire::ControlReply& reply);

}  // namespace ptypilot
