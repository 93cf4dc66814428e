// Hdf5Recorder: the Recorder that writes one HDF5 file per session, behind a write-ahead journal.
//
// Why a journal: HDF5 is not crash-safe. A process killed mid-write can leave the file's metadata
// inconsistent and the whole file unreadable, and H5Fflush does not fsync. So every frame first
// goes into an append-only journal that is fdatasync'd before write_frames() returns Ok; only
// then is it appended to the HDF5 file. After a crash, recover() rebuilds the HDF5 file from the
// journal; every frame that was acknowledged is in it.
//
// Files, per session, in RecorderConfig::directory:
//   <session_id>.h5       the readable form (h5py, py4DSTEM)
//   <session_id>.journal  the durable form; kept after the session (delete it once the .h5 is
//                         backed up, or keep it: `recover` turns it into the same .h5)
//   <session_id>.reserve  free space held during the session (RecorderConfig::reserve_bytes);
//                         removed at the end; one left behind by a crash is removed by
//                         recover_session() and by scan_directory()
// Neither .h5 nor .journal is overwritten: begin_session fails if either exists.
//
// HDF5 layout (N frames of rows x cols; every dataset little-endian; strings are variable-length
// UTF-8; positions are [y, x] in Angstrom relative to the FOV origin):
//   /frames/counts               <dtype> (N, rows, cols)  chunks (1, rows, cols), each
//                                compressed by the bitshuffle filter (HDF5 filter 32008) with
//                                LZ4, cd_values [major, minor, element size, 0 (the default
//                                block), 2 (LZ4)]; readers need that filter (h5py: Debian's
//                                `bitshuffle` plugin, or `import hdf5plugin`).
//                                <dtype> is SessionInfo::frame_dtype: uint8, uint16, uint32 or
//                                float32 (the default). Read its dtype from the dataset; sums
//                                of integer counts may need a wider type. A frame that brings
//                                its own bitshuffle-LZ4 chunk of <dtype>
//                                (DetectorFrame::bitshuffle_lz4) is stored as those bytes.
//   /frames/position_A           float64 (N, 2)           [y, x]: where the detector says it was
//   /frames/frame_index          uint64  (N)              0-based within the session, scan order
//   /frames/sub_sequence         uint32  (N)
//   /frames/position_index       uint32  (N)              index in its scan command's position list
//   /frames/timestamp_ns         uint64  (N)              acquisition time, from the detector
//   /frames/electrons_per_frame  float64 (N)
//   /sub_sequences/<k:04d>/proposed_A  float64 (m, 2)    what the policy asked for
//   /sub_sequences/<k:04d>/approved_A  float64 (m', 2)   what Safety let through
//   /sub_sequences/<k:04d>/potential   float32 (rows', cols')  reconstruction after sub-sequence k
//   root attributes:
//     session_id     string
//     config_json    string   the full configuration of the session
//     versions_json  string   {"ptypilot": ..., "hdf5": ..., ...}
//     pixel_A        float64  reconstruction pixel
//     frame_shape    int64 (2)  [rows, cols]
//     layout_version uint32   2 (this layout; 1 stored /frames/counts uncompressed)
//     complete       uint8    1 only after a session that ended well (end_session() without an
//                             error, and no recorder error); else 0
//     error          string   absent exactly when complete = 1. While recording it says
//                             "interrupted: ..." (the session has not ended; a file left so by a
//                             killed daemon keeps saying it until recovered); after the end,
//                             why the session ended in error (a detector or scan-generator
//                             timeout, a signal, a full disk, a recorder failure)
//     recovered_from string   present only in a file written by recover(): the journal's path
//     summary_json   string   present when the session ended through end_session() with a
//                             summary (the daemon's): per sub-sequence its latency breakdown and
//                             Safety's changes, the health counters, the dose; not in the
//                             journal, so a recovered file has none
// Rows are appended in the order write_frames() received them; frames are not sorted by
// frame_index. Frame datasets are chunked and extendible (1-D ones in chunks of 1024 rows).
//
// Journal format (version 3; recover() reads versions 2 and 3), little-endian, packed, a
// sequence of records:
//   record header, 24 bytes:
//     u32 magic 0x4A595450 ("PTYJ" as bytes)   u32 type
//     u64 payload_bytes                        u32 payload_crc32   u32 header_crc32 (of bytes 0-19)
//   CRC-32 is zlib's crc32 (IEEE 802.3, reflected, init and final xor 0xFFFFFFFF).
//   type 1, session (always first):
//     u32 journal_version = 3, u32 rows, u32 cols, u32 dtype, f64 pixel_A,
//     then session_id, config_json, versions_json, each as u32 byte length + UTF-8 bytes;
//     dtype of the frames' counts, numbered as ptypilot.wire.FrameHeader.DType:
//     1 uint8, 2 uint16, 3 uint32, 4 float32
//   type 2, frame (one record per frame; payload 56 bytes + the chunk):
//     u64 frame_index, u64 timestamp_ns, u32 sub_sequence, u32 position_index,
//     f64 y_A, f64 x_A, f64 electrons_per_frame, u32 rows, u32 cols,
//     the frame's chunk of /frames/counts, to the end of the payload: its counts in the
//     session's dtype, bitshuffled and LZ4-compressed in the filter's framing (u64 BE decoded
//     bytes, u32 BE block bytes, per block u32 BE size + LZ4 block, the last count % 8
//     elements verbatim). Version 2 held counts[rows * cols] in the session's dtype here,
//     uncompressed (56 + s * rows * cols bytes, s = 1, 2, 4, 4 for dtype 1-4); recover()
//     compresses them.
//   type 3, sub-sequence:
//     u32 index, u32 n_proposed, u32 n_approved, u32 potential_rows, u32 potential_cols, u32 0,
//     f64 proposed[n_proposed][2] (y, x), f64 approved[n_approved][2], f32 potential[rows * cols]
//   type 4, end of session: written by end_session() unless the recorder had failed; payload
//     empty when the session ended well, else the error's UTF-8 text (journals from before this
//     have an empty payload, and were only written after a clean end).
// The records of one write_frames() call go to the journal in one write(2) and one fdatasync.
// A crash can leave a torn last record; a record whose header or payload is short or whose CRC
// does not match ends the journal (recover() stops there and says how many bytes it ignored).
//
// Threads: not thread-safe; calls must be serialised (one thread, or one lock). The Debian HDF5
// build is not thread-safe either, so every HDF5 user in the process must share that discipline.
//
// Reading while recording: HDF5 1.10 locks the file, so h5py cannot open the .h5 of a session
// that is still recording; it can once end_session() has closed it.
#pragma once

#include <atomic>

#include <cstdint>
#include <filesystem>
#include <memory>
#include <nlohmann/json.hpp>
#include <span>
#include <string>
#include <vector>

#include "ptypilot/wire/frame.hpp"
#include "ptypilot/core/recorder.hpp"
#include "ptypilot/status.hpp"

namespace ptypilot {

struct RecorderConfig {
  std::filesystem::path directory;  // created if missing; must be writable
  // The HDF5 file is flushed (H5Fflush, which does not fsync) once this many frames have been
  // appended since the last flush, and always after each sub-sequence and at the end. 0: only
  // then. Durability never depends on this: it comes from the journal.
  int sync_every_frames = 256;
  // Full disk. HDF5 must write metadata to close a file; a file it cannot close is unreadable,
  // and HDF5 1.10 cannot close a file at all once a flush failed for lack of space (it then
  // crashes at process exit). So the recorder keeps out of that state in two ways:
  // - begin_session, write_frames and write_sub_sequence fail like a full disk (kUnavailable,
  //   "no space left") when the filesystem would have less than min_free_bytes free after the
  //   write: the session stops while its file can still be finalised.
  // - reserve_bytes of disk are held (fallocate'd as <session_id>.reserve) during the session
  //   and freed on the first error and at the end: room to close the file when something else
  //   filled the disk. What HDF5 holds unwritten is small (metadata and partial 1-D chunks;
  //   frames bypass the chunk cache): on a full 8 MiB tmpfs, 1 MiB of each let every session
  //   close cleanly, whether the recorder or another writer filled it; with neither, the .h5
  //   was unreadable and the process crashed at exit. begin_session fails if the reserve
  //   cannot be allocated.
  // 0 turns either off.
  std::uint64_t min_free_bytes = 64ull << 20;
  std::uint64_t reserve_bytes = 16ull << 20;
  // Test hook: the journal behaves like a full disk (a short write, then ENOSPC) once it would
  // grow past this many bytes. 0: unlimited.
  std::uint64_t max_journal_bytes = 0;
  // Test hook: the errno of that failure. ENOSPC is a full disk (kUnavailable); EIO, say, an
  // I/O error (kInternal), another way for the recorder to fail.
  int journal_fault_errno = 28;  // ENOSPC
};

// What recover() found, for callers that want numbers rather than the status message.
struct RecoveryReport {
  std::uint64_t frames = 0;
  std::uint32_t sub_sequences = 0;
  bool ended = false;                 // the journal has the end-of-session record
  bool complete = false;              // what the recovered file says
  std::string error;                  // the recovered file's `error` (empty when complete)
  std::uint64_t ignored_bytes = 0;    // a torn or corrupt tail, not recovered
  std::string stop_reason;            // why recovery stopped before the journal's end, if it did
};

// What recover_session() did, beside what it recovered.
struct SessionRecovery {
  std::filesystem::path journal;
  std::filesystem::path h5;
  RecoveryReport report;
  bool replaced = false;          // an existing .h5 was replaced
  bool reserve_removed = false;   // a <session>.reserve left by the crash was removed
};

// What `ptypilot recover` prints and `ptypilot_core.recover` returns: journal, h5, frames,
// sub_sequences, ended, complete, error, ignored_bytes, stop_reason, replaced, reserve_removed.
nlohmann::json to_json(const SessionRecovery& recovery);

// What scan_directory() found in a recorder directory.
struct DirectoryScan {
  // Journals whose .h5 is missing, unreadable or says "interrupted:", and no live session holds.
  std::vector<std::filesystem::path> orphaned_journals;
  std::vector<std::filesystem::path> reserves_removed;  // .reserve files no live session holds
};

class Hdf5Recorder final : public Recorder {
 public:
  // Throws std::runtime_error, naming the path, if the directory cannot be created or written.
  explicit Hdf5Recorder(RecorderConfig config);
  // Finalises an open session as incomplete (complete = 0) if end_session() was not called.
  ~Hdf5Recorder() override;
  Hdf5Recorder(const Hdf5Recorder&) = delete;
  Hdf5Recorder& operator=(const Hdf5Recorder&) = delete;

  // Creates <session_id>.h5 and <session_id>.journal. The session id must be a plain file name
  // ([A-Za-z0-9._-], not starting with '.'); frame_rows and frame_cols must be positive. The
  // counts are stored as info.frame_dtype.
  Status begin_session(const SessionInfo& info) override;
  // Every frame must have the session's shape, and every count must be exactly representable in
  // the session's frame_dtype (for an integer dtype: an integer in its range, which a count that
  // arrived as that dtype always is); else kInvalidArgument, naming the frame (and the pixel),
  // nothing of the call is written, and the session goes on (not sticky).
  // Ok means the frames are in the synced journal and in the HDF5 file. An I/O error returns
  // kUnavailable (disk full, quota) or kInternal (anything else) with the errno text and the
  // path, and is sticky: every later write_* returns the same status without touching the disk.
  // When the HDF5 append fails after the journal sync, the frames of that call are in the
  // journal but not counted: the journal (and after a failed flush, the .h5) may hold more
  // frames than were acknowledged, never fewer. The first error also frees the reserve.
  Status write_frames(std::span<const DetectorFrame> frames) override;
  // Journals (synced) and writes /sub_sequences/<index:04d>, then flushes the HDF5 file.
  Status write_sub_sequence(const SubSequenceRecord& record) override;
  // Ends the session: `error` empty for a session that ended well, else why it did not (a
  // detector that stopped sending, a signal, ...). Writes the end record with `error` to the
  // journal, sets complete = 1 when neither `error` nor a recorder error is set (else 0, and the
  // `error` attribute to `error`, or to the recorder's own error, which comes first), closes the
  // file and fsyncs it. Returns Ok once the file is closed and readable, also after an earlier
  // error: that error was returned when it happened and is in error(). An error here means the
  // .h5 could not be closed and may be unreadable; recover() rebuilds it from the journal.
  Status end_session(const std::string& error = "", const std::string& summary_json = "") override;
  // Frames acknowledged (write_frames returned Ok) in the current or last session.
  std::uint64_t frames_recorded() const override;
  // The .h5 of the current or last session; empty before the first session.
  std::filesystem::path output_path() const override;
  std::filesystem::path journal_path() const;
  // The sticky error of the current or last session; Ok if there was none.
  Status error() const;

  // Rebuilds an HDF5 file (the layout above, with `recovered_from` set) from a journal. Refuses
  // to overwrite h5_out. A torn or corrupt tail is not an error: recovery stops at the last
  // whole record and says so; the Ok status's message says how many frames were recovered.
  static Status recover(const std::filesystem::path& journal, const std::filesystem::path& h5_out);
  static Status recover(const std::filesystem::path& journal, const std::filesystem::path& h5_out,
                        RecoveryReport* report);

  // `ptypilot recover`: rebuilds <session>.h5 beside `path` (the journal, the .h5 or the
  // .reserve of a session) from its journal, replacing the .h5 atomically (written to
  // <session>.h5.recovering, then renamed), and removes the session's .reserve. Refuses a
  // journal that a live session holds (kFailedPrecondition). When the journal has no end record
  // and the old .h5 named a real error (a full disk), the recovered file keeps that error.
  static Status recover_session(const std::filesystem::path& path, SessionRecovery* out);

  // At start: the orphaned journals in `directory` (none if it does not exist), and removes the
  // .reserve files no live session holds.
  static DirectoryScan scan_directory(const std::filesystem::path& directory);

 private:
  struct Session;

  Status fail(Status status);  // makes status the sticky error, logs it once, returns it
  Status finish_session(bool clean, const std::string& session_error,
                        const std::string& summary_json = "");
  void release_reserve();

  RecorderConfig config_;
  std::unique_ptr<Session> session_;  // null between sessions
  std::filesystem::path h5_path_;
  std::filesystem::path journal_path_;
  // Read by status, /metrics and the live page on other threads while ingest counts.
  std::atomic<std::uint64_t> frames_recorded_{0};
  Status error_;
};

}  // namespace ptypilot
