// Status: the error channel of the per-frame path, which must never throw through the event loop.
#pragma once

#include <string>
#include <utility>

namespace ptypilot {

enum class StatusCode {
  kOk = 0,
  kInvalidArgument,     // the input itself is wrong: shape, NaN, negative counts
  kOutOfRange,          // a position outside the object or field of view
  kFailedPrecondition,  // the call is fine but the object is not ready for it
  kUnavailable,         // a backend or device that is not there
  kInternal,
};

const char* to_string(StatusCode code);

class [[nodiscard]] Status {
 public:
  Status() = default;
  Status(StatusCode code, std::string message) : code_(code), message_(std::move(message)) {}

  static Status Ok() { return {}; }
  bool ok() const { return code_ == StatusCode::kOk; }
  StatusCode code() const { return code_; }
  const std::string& message() const { return message_; }
  std::string to_string() const;

 private:
  StatusCode code_ = StatusCode::kOk;
  std::string message_;
};

inline Status invalid_argument(std::string message) {
  return {StatusCode::kInvalidArgument, std::move(message)};
}
inline Status out_of_range(std::string message) {
  return {StatusCode::kOutOfRange, std::move(message)};
}
inline Status failed_precondition(std::string message) {
  return {StatusCode::kFailedPrecondition, std::move(message)};
}

}  // namespace ptypilot
