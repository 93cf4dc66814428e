// The checks in front of the control socket's parsers (json_guard.hpp, control_codec.hpp): each
// request that ended `serve` before is refused with an error that names what is wrong.
#include <catch2/catch.hpp>
#include <random>
#include <stdexcept>
#include <string>

#include "ptypilot/wire/control_codec.hpp"
#include "ptypilot/wire/json_guard.hpp"

using namespace ptypilot;

namespace {

std::string refusal(const std::string& bytes) {
  try {
    decode_control_request(bytes);
  } catch (const std::invalid_argument& e) {
    return e.what();
  }
  return "";
}

}  // namespace

TEST_CASE("UTF-8: every malformed form is found at its byte", "[control]") {
  CHECK(valid_utf8_prefix("plain ascii") == 11);
  CHECK(valid_utf8_prefix("\xc3\xa5ngstr\xc3\xb6m \xe2\x84\xab \xf0\x9f\x94\xac") == 19);
  CHECK(valid_utf8_prefix("ab\xff") == 2);              // never a UTF-8 byte
  CHECK(valid_utf8_prefix("ab\x80") == 2);              // a lone continuation byte
  CHECK(valid_utf8_prefix("ab\xc0\xaf") == 2);          // overlong '/'
  CHECK(valid_utf8_prefix("ab\xe0\x80\xaf") == 2);      // overlong, 3 bytes
  CHECK(valid_utf8_prefix("ab\xed\xa0\x80") == 2);      // a surrogate
  CHECK(valid_utf8_prefix("ab\xf4\x90\x80\x80") == 2);  // above U+10FFFF
  CHECK(valid_utf8_prefix("ab\xe2\x84") == 2);          // cut short
  CHECK(valid_utf8_prefix(std::string("a\0b", 3)) == 3);
}

TEST_CASE("UTF-8: what is not valid becomes U+FFFD, byte by byte", "[control]") {
  CHECK(to_valid_utf8("plain \xc3\xa5") == "plain \xc3\xa5");
  CHECK(to_valid_utf8("last read: '\xe2\x84'") == "last read: '\xef\xbf\xbd\xef\xbf\xbd'");
  CHECK(to_valid_utf8("\xff") == "\xef\xbf\xbd");
  CHECK(to_valid_utf8("") == "");
}

TEST_CASE("JSON text: depth counts brackets outside strings and comments", "[control]") {
  const JsonLimits limits{1000, 3, true};
  CHECK(check_json_text(R"({"a": [[1]]})", limits).empty());
  CHECK(check_json_text(R"({"a": "[[[[[[", "b": "\"[[[["})", limits).empty());
  CHECK(check_json_text("{// [[[[\n \"a\": /* {{{{ */ 1}", limits).empty());
  CHECK_THAT(check_json_text(R"({"a": [[[1]]]})", limits),
             Catch::Contains("nested deeper than 3 levels at byte 8"));
  CHECK_THAT(check_json_text("{// [[[[\n \"a\": [[[1]]]}", JsonLimits{1000, 3, false}),
             Catch::Contains("nested deeper"));
  CHECK_THAT(check_json_text(std::string(1001, ' '), limits),
             Catch::Contains("1001 bytes exceeds the limit of 1000"));
  CHECK_THAT(check_json_text("{\"a\": \"\xff\"}", limits), Catch::Contains("invalid UTF-8 at byte 7"));
}

TEST_CASE("control requests that crashed serve are refused", "[control]") {
  // Invalid UTF-8 in a field nobody reads (type_error.316 when the reply was dumped).
  CHECK_THAT(refusal("{\"command\": \"status\", \"note\": \"\xff\"}"),
             Catch::Contains("invalid UTF-8 at byte 31"));
  // 100,000 levels (a SIGSEGV), as a request and as the config in a protobuf Configure.
  const std::string deep = std::string(100000, '[') + std::string(100000, ']');
  CHECK_THAT(refusal("{\"command\": \"configure\", \"config\": " + deep + "}"),
             Catch::Contains("nested deeper than 64 levels"));
  wire::ControlRequest configure;
  configure.mutable_configure()->set_config_json(deep);
  CHECK_THAT(refusal(configure.SerializeAsString()),
             Catch::Contains("configure: config: JSON nested deeper"));
  CHECK_THAT(refusal(std::string(kMaxControlRequestBytes + 1, '{')),
             Catch::Contains("exceeds the limit"));
  // A valid request still decodes, and a config with comments is fine.
  CHECK(decode_control_request(R"({"command": "status"})").has_status());
  configure.mutable_configure()->set_config_json("{// a comment\n \"session\": {}}");
  CHECK(decode_control_request(configure.SerializeAsString()).has_configure());
}

TEST_CASE("random bytes starting with '{' are refused with a UTF-8 reply", "[control]") {
  std::mt19937 rng(13);  // fixed: the same messages every run
  for (int i = 0; i < 2000; ++i) {
    std::string bytes = "{";
    const int n = static_cast<int>(rng() % 300) + 1;
    for (int k = 0; k < n; ++k) bytes.push_back(static_cast<char>(rng() & 0xff));
    std::string error;
    try {
      decode_control_request(bytes);
      continue;  // by chance a valid request
    } catch (const std::invalid_argument& e) {
      error = e.what();
    }
    INFO(i);
    CHECK(valid_utf8_prefix(error) == error.size());
    wire::ControlReply reply;
    reply.set_error(error);
    CHECK_NOTHROW(reply_to_json(reply));
  }
}
