// What every HDF5 user in the daemon needs: an owning handle, and errors captured as text instead
// of printed to stderr. The recorder and the recorded-data readers share these.
//
// Threads: the Debian HDF5 build is not thread-safe; one thread uses HDF5 at a time (see
// hdf5_recorder.hpp), and so do these helpers (the captured error is one per process).
#pragma once

#include <hdf5.h>

#include <string>
#include <utility>

namespace ptypilot::hdf5 {

// An HDF5 identifier that is closed (with the matching H5?close) when it goes out of scope.
class H5Id {
 public:
  using Closer = herr_t (*)(hid_t);
  H5Id() = default;
  H5Id(hid_t id, Closer closer) : id_(id), closer_(closer) {}
  H5Id(H5Id&& o) noexcept : id_(std::exchange(o.id_, H5I_INVALID_HID)), closer_(o.closer_) {}
  H5Id& operator=(H5Id&& o) noexcept {
    if (this != &o) {
      reset();
      id_ = std::exchange(o.id_, H5I_INVALID_HID);
      closer_ = o.closer_;
    }
    return *this;
  }
  H5Id(const H5Id&) = delete;
  H5Id& operator=(const H5Id&) = delete;
  ~H5Id() { reset(); }
  hid_t get() const { return id_; }
  bool valid() const { return id_ >= 0; }
  hid_t release() { return std::exchange(id_, H5I_INVALID_HID); }
  herr_t reset() {
    herr_t r = 0;
    if (id_ >= 0 && closer_) r = closer_(id_);
    id_ = H5I_INVALID_HID;
    return r;
  }

 private:
  hid_t id_ = H5I_INVALID_HID;
  Closer closer_ = nullptr;
};

// While alive: HDF5 errors are captured for error_text() instead of printed to stderr. Restores
// the handler that was installed, so other HDF5 users are unaffected. Captured at the moment the
// failing call returns, because the next HDF5 call (even closing a dataspace on the way out)
// clears the error stack.
class CaptureErrors {
 public:
  CaptureErrors();
  ~CaptureErrors();
  CaptureErrors(const CaptureErrors&) = delete;
  CaptureErrors& operator=(const CaptureErrors&) = delete;

 private:
  H5E_auto2_t func_ = nullptr;
  void* data_ = nullptr;
};

// The outermost entry of an HDF5 error stack says what failed, the innermost why (for an I/O
// error it carries errno and its text).
std::string describe_error_stack(hid_t stack);

// Takes the first failure captured since it was last read (or, without one, whatever is on the
// stack now) and clears both. Never empty.
std::string error_text();

// Whether `path` (absolute, or relative to `parent`) names a link, following it group by group:
// H5Lexists fails, rather than says no, when an intermediate group is missing.
bool link_exists(hid_t parent, const std::string& path);

#if H5_VERSION_GE(1, 12, 0)
using LinkInfo = H5L_info2_t;
#else
using LinkInfo = H5L_info_t;
#endif

// For failures that are expected or already reported (a rollback after an error, a probe for an
// object that may be missing).
void forget_errors();

// The bitshuffle HDF5 filter (github.com/kiyo-masui/bitshuffle, the one DECTRIS uses), and the
// cd_values[4] that selects its LZ4 compressor. A dataset stores its cd_values as
// [major, minor, element bytes, block elements (0: its default), compressor]; its creator gives
// only the last two (H5Pset_filter(..., 2, {block, compressor}), as h5py's hdf5plugin does), and
// the filter's set_local puts the first three in front.
inline constexpr H5Z_filter_t kBitshuffleFilterId = 32008;
inline constexpr unsigned kBitshuffleLz4Compressor = 2;

// Makes filter 32008 usable in this process: if HDF5 has none (no bitshuffle plugin on its
// plugin path), registers ptypilot's own codec (compression.hpp) under that id, which encodes
// and decodes bitshuffle + LZ4 and refuses the other compressors (none, zstd).
// An installed plugin is left in charge, so that h5py in the same process keeps every compressor
// it has. Idempotent; false only if registration failed. Either way the chunks are the same bytes.
bool ensure_bitshuffle_filter();
// The same, but always registers ptypilot's codec, replacing a plugin: for tests of that codec.
bool register_own_bitshuffle_filter();

}  // namespace ptypilot::hdf5
