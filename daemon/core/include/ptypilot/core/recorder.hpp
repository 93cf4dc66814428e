// Recorder: persists everything a session receives and decides. A frame counts as recorded only
// once write_frames() has returned Ok, and by then it survives a crash of the daemon: it is in
// the journal and the journal is synced to disk (fdatasync). The HDF5 file is the readable form;
// `ptypilot recover` (and Hdf5Recorder::recover) rebuilds it from the journal after a crash.
#pragma once

#include <cstdint>
#include <filesystem>
#include <span>
#include <string>
#include <vector>

#include "ptypilot/wire/frame.hpp"
#include "ptypilot/reconstructor.hpp"
#include "ptypilot/status.hpp"

namespace ptypilot {

struct SessionInfo {
  std::string session_id;
  std::string config_json;  // the full configuration of the session
  std::string versions_json;  // {"ptypilot": ..., "hdf5": ..., "fftw": ...}
  int frame_rows = 0;
  int frame_cols = 0;
  double pixel_A = 0.0;     // reconstruction pixel
  // The dtype the frames' counts are stored in (journal and /frames/counts): set it to what the
  // detector sends (a uint16 detector: kUint16, half the bytes of float32). DetectorFrame holds
  // counts as float; write_frames converts them back and refuses (kInvalidArgument) a frame with
  // a count this dtype cannot hold exactly. kFloat32 holds every count.
  PixelType frame_dtype = PixelType::kFloat32;
};

struct SubSequenceRecord {
  std::uint32_t index = 0;
  std::vector<Vec2> proposed_A;  // what the policy asked for
  std::vector<Vec2> approved_A;  // what Safety let through (what the beam did)
  RealImage potential;           // the reconstruction after this sub-sequence's frames
};

class Recorder {
 public:
  virtual ~Recorder() = default;
  virtual Status begin_session(const SessionInfo& info) = 0;
  // Durable on Ok (see above). On error (disk full, I/O error) nothing of this call is counted
  // as recorded and the session must stop; what was recorded before stays readable.
  virtual Status write_frames(std::span<const DetectorFrame> frames) = 0;
  virtual Status write_sub_sequence(const SubSequenceRecord& record) = 0;
  // Finalises the HDF5 file so h5py can read it. `error`: why the session ended in error (a
  // timeout, a signal), empty when it ended well; the file says so (complete, error). Safe to
  // call after a recorder error, whose message the file then carries instead. `summary_json`:
  // what the session measured that is not in its frames (latencies, counters), kept as the
  // file's summary_json attribute for `ptypilot report`; empty: none.
  virtual Status end_session(const std::string& error = "", const std::string& summary_json = "") = 0;
  virtual std::uint64_t frames_recorded() const = 0;
  virtual std::filesystem::path output_path() const = 0;
};

}  // namespace ptypilot
