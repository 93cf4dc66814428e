#include "ptypilot/wire/npy.hpp"

#include <algorithm>
#include <cctype>
#include <iterator>
#include <cstdint>
#include <cstring>
#include <fstream>
#include <stdexcept>
#include <string>
#include <string_view>

namespace ptypilot {

void write_npy(const std::filesystem::path& path, std::span<const float> data,
               const std::vector<std::size_t>& shape) {
  std::size_t count = 1;
  std::string dims;
  for (std::size_t d : shape) {
    count *= d;
    dims += std::to_string(d) + ", ";
  }
  if (count != data.size()) throw std::invalid_argument("write_npy: shape does not match the data");
  if (shape.size() > 1) dims.erase(dims.size() - 2);  // (a, b) but (a,) for one dimension
  std::string header = "{'descr': '<f4', 'fortran_order': False, 'shape': (" + dims + "), }";
  // Magic (6) + version (2) + length (2) + header, padded with spaces to a multiple of 64.
  const std::size_t unpadded = 10 + header.size() + 1;
  header.append((64 - unpadded % 64) % 64, ' ');
  header.push_back('\n');
  std::ofstream out(path, std::ios::binary);
  if (!out) throw std::runtime_error("cannot write " + path.string());
  out.write("\x93NUMPY\x01\x00", 8);
  const auto len = static_cast<std::uint16_t>(header.size());
  const char len_bytes[2] = {static_cast<char>(len & 0xff), static_cast<char>(len >> 8)};
  out.write(len_bytes, 2);
  out << header;
  out.write(reinterpret_cast<const char*>(data.data()),
            static_cast<std::streamsize>(data.size_bytes()));
  if (!out) throw std::runtime_error("write failed: " + path.string());
}

std::size_t NpyHeader::element_count() const {
  std::size_t n = 1;
  for (std::size_t d : shape) n *= d;
  return n;
}

namespace {

// Reads the Python dict literal numpy writes as the header, e.g.
//   {'descr': '<u2', 'fortran_order': False, 'shape': (16, 16, 32, 32), }
// Only the three keys numpy defines are looked at; `base` is the file offset of text[0], so that
// an error names the byte where the header stops making sense.
class HeaderText {
 public:
  HeaderText(std::string_view text, std::size_t base, const std::filesystem::path& path)
      : text_(text), base_(base), path_(path) {}

  [[noreturn]] void fail(const std::string& what, std::size_t at) const {
    throw std::runtime_error(path_.string() + ": .npy header: " + what + " at offset " +
                             std::to_string(base_ + at));
  }

  // The position just after `'key':`, with spaces skipped.
  std::size_t value_of(std::string_view key) const {
    for (const char quote : {'\'', '"'}) {
      std::string quoted(1, quote);
      quoted.append(key);
      quoted.push_back(quote);
      const std::size_t at = text_.find(quoted);
      if (at == std::string_view::npos) continue;
      std::size_t i = skip_spaces(at + quoted.size());
      if (i >= text_.size() || text_[i] != ':') fail("no ':' after '" + std::string(key) + "'", i);
      return skip_spaces(i + 1);
    }
    fail("no '" + std::string(key) + "' key", 0);
  }

  std::string quoted_string(std::size_t i) const {
    if (i >= text_.size() || (text_[i] != '\'' && text_[i] != '"')) {
      if (i < text_.size() && text_[i] == '[')
        fail("a structured dtype (a list of fields); only plain numbers are read", i);
      fail("expected a quoted string", i);
    }
    const std::size_t end = text_.find(text_[i], i + 1);
    if (end == std::string_view::npos) fail("unterminated string", i);
    return std::string(text_.substr(i + 1, end - i - 1));
  }

  bool boolean(std::size_t i) const {
    if (text_.substr(i, 4) == "True") return true;
    if (text_.substr(i, 5) == "False") return false;
    fail("expected True or False", i);
  }

  std::vector<std::size_t> shape_tuple(std::size_t i) const {
    if (i >= text_.size() || text_[i] != '(') fail("expected a shape tuple", i);
    std::vector<std::size_t> shape;
    ++i;
    while (true) {
      i = skip_spaces(i);
      if (i >= text_.size()) fail("unterminated shape tuple", i);
      if (text_[i] == ')') return shape;
      if (!std::isdigit(static_cast<unsigned char>(text_[i]))) fail("expected a dimension", i);
      std::size_t value = 0;
      while (i < text_.size() && std::isdigit(static_cast<unsigned char>(text_[i]))) {
        const std::size_t digit = static_cast<std::size_t>(text_[i] - '0');
        if (value > (SIZE_MAX - digit) / 10) fail("dimension too large", i);
        value = value * 10 + digit;
        ++i;
      }
      // Python writes long integers as 123L in old files.
      if (i < text_.size() && text_[i] == 'L') ++i;
      shape.push_back(value);
      i = skip_spaces(i);
      if (i < text_.size() && text_[i] == ',') ++i;
    }
  }

 private:
  std::size_t skip_spaces(std::size_t i) const {
    while (i < text_.size() && std::isspace(static_cast<unsigned char>(text_[i]))) ++i;
    return i;
  }

  std::string_view text_;
  std::size_t base_;
  const std::filesystem::path& path_;
};

}  // namespace

NpyHeader parse_npy_header(std::span<const std::byte> bytes, const std::filesystem::path& path) {
  auto fail = [&](const std::string& what, std::size_t at) -> void {
    throw std::runtime_error(path.string() + ": " + what + " at offset " + std::to_string(at));
  };
  const auto* b = reinterpret_cast<const unsigned char*>(bytes.data());
  if (bytes.size() < 10 || std::memcmp(b, "\x93NUMPY", 6) != 0)
    fail("not an .npy file (no \\x93NUMPY magic)", 0);
  const unsigned major = b[6];
  std::size_t header_len = 0;
  std::size_t text_start = 0;
  if (major == 1) {
    header_len = b[8] | (std::size_t{b[9]} << 8);
    text_start = 10;
  } else if (major == 2 || major == 3) {
    if (bytes.size() < 12) fail("truncated .npy header", bytes.size());
    header_len =
        b[8] | (std::size_t{b[9]} << 8) | (std::size_t{b[10]} << 16) | (std::size_t{b[11]} << 24);
    text_start = 12;
  } else {
    fail(".npy format version " + std::to_string(major) + " (known: 1, 2, 3)", 6);
  }
  if (text_start + header_len > bytes.size())
    fail("truncated .npy header: it declares " + std::to_string(header_len) +
             " bytes but the file ends",
         bytes.size());
  const std::string_view text(reinterpret_cast<const char*>(b) + text_start, header_len);
  const HeaderText header(text, text_start, path);

  NpyHeader h;
  h.data_offset = text_start + header_len;
  h.descr = header.quoted_string(header.value_of("descr"));
  h.fortran_order = header.boolean(header.value_of("fortran_order"));
  h.shape = header.shape_tuple(header.value_of("shape"));
  const std::size_t shape_at = text_start + text.find("shape");

  const std::string& d = h.descr;
  const std::size_t descr_at = text_start + text.find(d);
  if (d.size() < 3 || (d[0] != '<' && d[0] != '>' && d[0] != '|' && d[0] != '='))
    fail("dtype '" + d + "' is not a plain number type such as '<u2'", descr_at);
  h.byte_order = d[0] == '=' ? '<' : d[0];  // '=' is the writer's order; numpy writes '<' on x86
  h.kind = d[1];
  try {
    h.item_bytes = std::stoul(d.substr(2));
  } catch (const std::exception&) {
    fail("dtype '" + d + "' has no item size", descr_at);
  }
  const bool known =
      ((h.kind == 'u' || h.kind == 'i') &&
       (h.item_bytes == 1 || h.item_bytes == 2 || h.item_bytes == 4 || h.item_bytes == 8)) ||
      (h.kind == 'f' && (h.item_bytes == 4 || h.item_bytes == 8)) ||
      (h.kind == 'b' && h.item_bytes == 1);
  if (!known)
    fail("dtype '" + d +
             "' is not supported (unsigned or signed integers of 1-8 bytes, "
             "float32, float64, bool)",
         descr_at);
  if (h.item_bytes == 1) h.byte_order = '|';
  // A shape whose byte count overflows would pass any size check after wrapping around.
  std::size_t data_bytes = h.item_bytes;
  for (std::size_t d : h.shape)
    if (d != 0 && data_bytes > (std::size_t{1} << 62) / d)
      fail("shape too large: more than 2^62 bytes of data", shape_at);
    else
      data_bytes *= d;
  return h;
}

std::vector<float> read_npy_image(const std::filesystem::path& path, std::size_t* rows,
                                  std::size_t* cols) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error(path.string() + ": cannot read");
  const std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  const std::span<const std::byte> bytes(reinterpret_cast<const std::byte*>(text.data()),
                                         text.size());
  const NpyHeader h = parse_npy_header(bytes, path);
  if (h.shape.size() != 2 || h.fortran_order)
    throw std::runtime_error(path.string() + ": expected a 2-D array in C order");
  if (h.data_offset + h.data_bytes() > bytes.size())
    throw std::runtime_error(path.string() + ": truncated");
  *rows = h.shape[0];
  *cols = h.shape[1];
  std::vector<float> out(h.element_count());
  const std::byte* p = bytes.data() + h.data_offset;
  for (std::size_t i = 0; i < out.size(); ++i, p += h.item_bytes) {
    unsigned char b[8];
    std::memcpy(b, p, h.item_bytes);
    if (h.byte_order == '>') std::reverse(b, b + h.item_bytes);
    double v = 0;
    auto get = [&]<typename T>(T) {
      T t;
      std::memcpy(&t, b, sizeof t);
      return static_cast<double>(t);
    };
    switch (h.kind) {
      case 'b':
      case 'u':
        v = h.item_bytes == 1   ? get(std::uint8_t{})
            : h.item_bytes == 2 ? get(std::uint16_t{})
            : h.item_bytes == 4 ? get(std::uint32_t{})
                                : get(std::uint64_t{});
        break;
      case 'i':
        v = h.item_bytes == 1   ? get(std::int8_t{})
            : h.item_bytes == 2 ? get(std::int16_t{})
            : h.item_bytes == 4 ? get(std::int32_t{})
                                : get(std::int64_t{});
        break;
      case 'f':
        if (h.item_bytes == 4) v = get(float{});
        else if (h.item_bytes == 8) v = get(double{});
        else throw std::runtime_error(path.string() + ": float16 is not read; save as float32");
        break;
      default:
        throw std::runtime_error(path.string() + ": not a plain number array");
    }
    out[i] = static_cast<float>(v);
  }
  return out;
}

}  // namespace ptypilot
