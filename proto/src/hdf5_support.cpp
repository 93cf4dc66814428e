#include "ptypilot/wire/hdf5_support.hpp"

#include <algorithm>
#include <cstring>
#include <span>
#include <vector>

#include "ptypilot/wire/compression.hpp"

namespace ptypilot::hdf5 {

namespace {

// The first HDF5 failure since it was last read; one thread uses HDF5 (see the header).
std::string g_first_error;

herr_t capture(hid_t stack, void*) {
  if (g_first_error.empty()) g_first_error = describe_error_stack(stack);
  return 0;
}

}  // namespace

CaptureErrors::CaptureErrors() {
  H5Eget_auto2(H5E_DEFAULT, &func_, &data_);
  H5Eset_auto2(H5E_DEFAULT, &capture, nullptr);
  g_first_error.clear();
}

CaptureErrors::~CaptureErrors() {
  H5Eset_auto2(H5E_DEFAULT, func_, data_);
  g_first_error.clear();
}

std::string describe_error_stack(hid_t stack) {
  struct Walk {
    std::string outer, inner;
    int count = 0;
  } walk;
  auto visit = [](unsigned, const H5E_error2_t* e, void* data) -> herr_t {
    auto* w = static_cast<Walk*>(data);
    std::string desc = e->desc ? e->desc : "";
    // An I/O entry carries ctime() (with its newline) and buffer addresses; errno and its text
    // come before ", buf = ", and that is what a person needs.
    std::erase(desc, '\n');
    if (const auto cut = desc.find(", buf = "); cut != std::string::npos) desc.resize(cut);
    std::string entry = std::string(e->func_name ? e->func_name : "?") + "(): " + desc;
    if (w->count++ == 0) w->outer = entry;
    w->inner = std::move(entry);
    return 0;
  };
  H5Ewalk2(stack, H5E_WALK_DOWNWARD, visit, &walk);
  if (walk.count == 0) return "";
  if (walk.count == 1) return walk.outer;
  return walk.outer + " [" + walk.inner + "]";
}

std::string error_text() {
  std::string text = std::exchange(g_first_error, std::string());
  if (text.empty()) text = describe_error_stack(H5E_DEFAULT);
  H5Eclear2(H5E_DEFAULT);
  return text.empty() ? "no detail from HDF5" : text;
}

bool link_exists(hid_t parent, const std::string& path) {
  std::string prefix;
  std::size_t at = 0;
  while (at < path.size()) {
    const std::size_t slash = path.find('/', at + 1);
    prefix = path.substr(0, slash);
    at = slash == std::string::npos ? path.size() : slash;
    if (prefix.empty() || prefix == "/") continue;
    if (H5Lexists(parent, prefix.c_str(), H5P_DEFAULT) <= 0) {
      forget_errors();
      return false;
    }
  }
  return true;
}

void forget_errors() {
  g_first_error.clear();
  H5Eclear2(H5E_DEFAULT);
}

namespace {

// HDF5's filter callback for 32008, over compression.hpp. Returns the size of the new *buf, or
// 0 for failure (HDF5's convention); the buffer is HDF5's to free, so it comes from
// H5allocate_memory.
std::size_t bitshuffle_filter(unsigned flags, std::size_t cd_count, const unsigned cd_values[],
                              std::size_t bytes, std::size_t* buf_size, void** buf) {
  if (cd_count < 3) return 0;
  const std::size_t element = cd_values[2];
  const unsigned compressor = cd_count >= 5 ? cd_values[4] : 0;
  const std::size_t block_bytes = cd_count >= 4 ? std::size_t{cd_values[3]} * element : 0;
  const std::span<const std::byte> in(static_cast<const std::byte*>(*buf), bytes);
  std::vector<std::byte> out;
  if (compressor != kBitshuffleLz4Compressor) return 0;  // bitshuffle alone or with zstd: not ours
  if (flags & H5Z_FLAG_REVERSE) {
    compression::Hdf5FramingHeader header;
    if (!compression::read_hdf5_framing_header(in, &header).ok()) return 0;
    out.resize(header.decoded_bytes);
    if (!compression::decode_bitshuffle_lz4(in, element, out).ok()) return 0;
  } else if (!compression::encode_bitshuffle_lz4(in, element, &out, block_bytes).ok()) {
    return 0;
  }
  void* replaced = H5allocate_memory(out.size() ? out.size() : 1, false);
  if (!replaced) return 0;
  if (!out.empty()) std::memcpy(replaced, out.data(), out.size());
  H5free_memory(*buf);
  *buf = replaced;
  *buf_size = out.size() ? out.size() : 1;
  return out.size();
}

// What the plugin's set_local does, so that a file reads the same whoever wrote it: the
// caller's cd_values (block size, compressor) move up behind [major, minor, element size].
herr_t bitshuffle_set_local(hid_t dcpl, hid_t type, hid_t) {
  unsigned flags = 0;
  std::size_t given = 8;
  unsigned user[8] = {};
  if (H5Pget_filter_by_id2(dcpl, kBitshuffleFilterId, &flags, &given, user, 0, nullptr,
                           nullptr) < 0)
    return -1;
  const std::size_t element = H5Tget_size(type);
  if (element == 0 || given > 2) return -1;
  unsigned values[5] = {0, 0, static_cast<unsigned>(element), 0, 0};
  for (std::size_t i = 0; i < given; ++i) values[3 + i] = user[i];
  return H5Pmodify_filter(dcpl, kBitshuffleFilterId, flags, 3 + given, values);
}

const H5Z_class2_t kOwnBitshuffle = {
    H5Z_CLASS_T_VERS,
    kBitshuffleFilterId,
    1,
    1,
    "bitshuffle (ptypilot's codec)",
    nullptr,  // no can_apply: every integer or float type bitshuffles
    bitshuffle_set_local,
    bitshuffle_filter,
};

}  // namespace

bool register_own_bitshuffle_filter() { return H5Zregister(&kOwnBitshuffle) >= 0; }

bool ensure_bitshuffle_filter() {
  // H5Zfilter_avail also looks on the plugin path (and loads a plugin found there).
  if (H5Zfilter_avail(kBitshuffleFilterId) > 0) return true;
  forget_errors();
  return register_own_bitshuffle_filter();
}

}  // namespace ptypilot::hdf5
