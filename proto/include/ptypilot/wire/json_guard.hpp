// JSON text from outside (control requests, the config they carry, config files) is checked
// before nlohmann parses it. nlohmann's parser is fine with deep nesting, but what comes after it
// is not: dump(), the config reader and the destructor of a deep value recurse once per level,
// and 100,000 levels (200 KB of brackets) overflow the stack. And a parse error quotes the bytes
// it stopped at, so an invalid UTF-8 byte ends up in the error text, which then throws again
// (type_error.316) when the reply is dumped. The check is one pass with no recursion.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace ptypilot {

struct JsonLimits {
  std::size_t max_bytes = 1u << 20;  // a config is a few KB; the largest control request is one
  int max_depth = 64;                // a config nests 4 levels deep
  bool allow_comments = false;       // // and /* */, as config files may have them
};

// The largest control request, and the limits on the JSON in it (a JSON request, or the config a
// protobuf Configure carries; config files too, which may have comments).
inline constexpr std::size_t kMaxControlRequestBytes = 1u << 20;
inline constexpr JsonLimits kControlJsonLimits{kMaxControlRequestBytes, 64, false};
inline constexpr JsonLimits kConfigJsonLimits{kMaxControlRequestBytes, 64, true};

// Empty when `text` is within the limits and valid UTF-8 (no overlong forms, no surrogates,
// nothing above U+10FFFF); else what is wrong and at which byte offset. It never quotes the bytes
// themselves, so the message is always valid UTF-8. Brackets inside strings and comments do not
// count towards the depth. This is not a JSON validator: the parser does the rest.
std::string check_json_text(std::string_view text, const JsonLimits& limits);

// The length of the valid UTF-8 prefix of `text` (text.size() when all of it is valid).
std::size_t valid_utf8_prefix(std::string_view text);

// `text` with each byte that is not part of valid UTF-8 replaced by U+FFFD: for messages that
// quote what a client sent (a parser's "last read" may end inside a character), before they go
// into a protobuf string field (serialising invalid UTF-8 logs an error, and Python's protobuf
// refuses to parse it) or a JSON reply.
std::string to_valid_utf8(std::string_view text);

}  // namespace ptypilot
