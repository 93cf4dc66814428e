#include "ptypilot/wire/json_guard.hpp"

#include <cstdint>

namespace ptypilot {

std::size_t valid_utf8_prefix(std::string_view text) {
  const auto* s = reinterpret_cast<const unsigned char*>(text.data());
  const std::size_t n = text.size();
  std::size_t i = 0;
  while (i < n) {
    const unsigned char c = s[i];
    if (c < 0x80) {
      ++i;
      continue;
    }
    std::size_t len = 0;
    std::uint32_t cp = 0;
    if (c >= 0xC2 && c <= 0xDF) {
      len = 2;
      cp = c & 0x1F;
    } else if (c >= 0xE0 && c <= 0xEF) {
      len = 3;
      cp = c & 0x0F;
    } else if (c >= 0xF0 && c <= 0xF4) {
      len = 4;
      cp = c & 0x07;
    } else {
      return i;  // a continuation byte, 0xC0/0xC1 (always overlong) or 0xF5-0xFF
    }
    if (n - i < len) return i;
    for (std::size_t k = 1; k < len; ++k) {
      if ((s[i + k] & 0xC0) != 0x80) return i;
      cp = (cp << 6) | (s[i + k] & 0x3F);
    }
    if ((len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000) || cp > 0x10FFFF ||
        (cp >= 0xD800 && cp <= 0xDFFF))
      return i;
    i += len;
  }
  return n;
}

std::string to_valid_utf8(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  while (!text.empty()) {
    const std::size_t valid = valid_utf8_prefix(text);
    out.append(text.substr(0, valid));
    if (valid == text.size()) break;
    out.append("\xEF\xBF\xBD");  // U+FFFD
    text.remove_prefix(valid + 1);
  }
  return out;
}

std::string check_json_text(std::string_view text, const JsonLimits& limits) {
  if (text.size() > limits.max_bytes)
    return "JSON of " + std::to_string(text.size()) + " bytes exceeds the limit of " +
           std::to_string(limits.max_bytes) + " bytes";
  if (const std::size_t valid = valid_utf8_prefix(text); valid != text.size())
    return "invalid UTF-8 at byte " + std::to_string(valid);
  int depth = 0;
  bool in_string = false;
  const std::size_t n = text.size();
  for (std::size_t i = 0; i < n; ++i) {
    const char c = text[i];
    if (in_string) {
      if (c == '\\') ++i;  // the escaped character cannot end the string
      else if (c == '"') in_string = false;
      continue;
    }
    switch (c) {
      case '"':
        in_string = true;
        break;
      case '{':
      case '[':
        if (++depth > limits.max_depth)
          return "JSON nested deeper than " + std::to_string(limits.max_depth) +
                 " levels at byte " + std::to_string(i);
        break;
      case '}':
      case ']':
        --depth;  // unbalanced brackets are the parser's to report
        break;
      case '/':
        if (!limits.allow_comments || i + 1 >= n) break;
        if (text[i + 1] == '/') {
          const std::size_t end = text.find('\n', i + 2);
          i = end == std::string_view::npos ? n : end;
        } else if (text[i + 1] == '*') {
          const std::size_t end = text.find("*/", i + 2);
          i = end == std::string_view::npos ? n : end + 1;
        }
        break;
      default:
        break;
    }
  }
  return {};
}

}  // namespace ptypilot
