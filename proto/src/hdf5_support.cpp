#include "ptypilot/wire/hdf5_support.hpp"

#include <algorithm>

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

}  // namespace ptypilot::hdf5
