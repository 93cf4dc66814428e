// One session's HDF5 file, in the layout documented in hdf5_recorder.hpp: created with its root
// attributes, frames appended to extendible datasets, closed with the `complete` attribute.
// Hdf5Recorder writes it live, recover() from a journal. Internal to the recorder's files in
// daemon/record/src; like all HDF5 use in the process, one thread at a time.
#pragma once

#include <hdf5.h>

#include <array>
#include <cstddef>
#include <filesystem>
#include <span>
#include <string>
#include <vector>

#include "ptypilot/wire/frame.hpp"
#include "ptypilot/wire/hdf5_support.hpp"
#include "ptypilot/core/recorder.hpp"
#include "ptypilot/status.hpp"

namespace ptypilot::recorder {

// A live session's file says, in its `error` attribute, that it is not finished, from its
// creation until finish() replaces or removes it: a file left by a killed daemon says so to
// whoever opens it, until recovery replaces it. The text starts with this prefix.
inline constexpr const char* kInterruptedPrefix = "interrupted:";
std::string interrupted_error(const std::string& session_id);

// What a session file says about itself, read without changing it.
struct SessionFileState {
  bool exists = false;
  bool readable = false;  // HDF5 opens it (not while another process has it open for writing)
  bool complete = false;
  std::string error;      // empty when the attribute is absent
  // Also a file of an older build, which said only complete = 0 until the end.
  bool interrupted() const {
    return !readable || error.rfind(kInterruptedPrefix, 0) == 0 || (!complete && error.empty());
  }
};
SessionFileState read_session_file_state(const std::filesystem::path& path);

class Hdf5SessionWriter {
 public:
  Hdf5SessionWriter() = default;
  ~Hdf5SessionWriter() { close(); }
  Hdf5SessionWriter(const Hdf5SessionWriter&) = delete;
  Hdf5SessionWriter& operator=(const Hdf5SessionWriter&) = delete;

  // Creates `path` (failing if it exists) with complete = 0, and `recovered_from` set unless
  // empty; a live file (recovered_from empty) also gets the interrupted `error` above, flushed.
  // Errors name the path; a full disk is kUnavailable.
  Status create(const std::filesystem::path& path, const SessionInfo& info,
                const std::string& recovered_from);
  bool is_open() const { return file_.valid(); }

  // Appends whole rows to every frame dataset: the fields of `frames` (their counts are not
  // used) and, for frame i, chunks[i] as its chunk of /frames/counts: its counts in the
  // session's dtype, little-endian, bitshuffled and LZ4-compressed in the filter's framing
  // (compression::encode_bitshuffle_lz4), stored as they are. On failure every dataset is cut
  // back to the old length, so the file never holds a frame whose fields are only partly written.
  Status append(std::span<const DetectorFrame> frames,
                std::span<const std::span<const unsigned char>> chunks);
  // Writes /sub_sequences/<index:04d>.
  Status write_sub_sequence(const SubSequenceRecord& r);
  // H5Fflush, which does not fsync.
  Status flush();
  // Sets the final attributes (complete; `error` removed when complete, else set to `error`) and
  // closes the file, then fsyncs it: a file that says complete = 1 is on disk. Closes even when an attribute cannot be written; returns the first failure.
  Status finish(bool complete, const std::string& error, const std::string& summary_json = "");
  // Closes without the final attributes: for a file that is about to be removed.
  void close();

 private:
  std::array<hdf5::H5Id*, 7> datasets();
  bool set_length(hid_t dset, const std::vector<hsize_t>& tail, hsize_t length);
  bool append_chunks(hid_t dset, std::span<const std::span<const unsigned char>> chunks);
  bool extend_and_write(hid_t dset, hid_t mem_type, const std::vector<hsize_t>& tail, hsize_t n,
                        const void* data);

  std::filesystem::path path_;
  hsize_t rows_ = 0;
  hsize_t cols_ = 0;
  hsize_t rows_written_ = 0;
  hid_t counts_type_ = H5I_INVALID_HID;  // a predefined type: not closed
  hdf5::H5Id file_, sub_sequences_;
  hdf5::H5Id counts_, position_, frame_index_, sub_sequence_, position_index_, timestamp_,
      electrons_;
  // Reused between appends: the frames' fields, one buffer per dataset.
  std::vector<double> position_buf_, electrons_buf_;
  std::vector<std::uint64_t> frame_index_buf_, timestamp_buf_;
  std::vector<std::uint32_t> sub_sequence_buf_, position_index_buf_;
};

}  // namespace ptypilot::recorder
