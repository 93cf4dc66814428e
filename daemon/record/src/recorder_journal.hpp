// The recorder's write-ahead journal (its format is documented in hdf5_recorder.hpp): records
// encoded for Hdf5Recorder, decoded for recover(), and the append-only file they go to.
// Internal to the recorder's files in daemon/record/src.
#pragma once

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "ptypilot/wire/frame.hpp"
#include "ptypilot/core/recorder.hpp"
#include "ptypilot/status.hpp"

namespace ptypilot::recorder {

// Version 3 journals each frame's counts as its bitshuffle-LZ4 chunk (the bytes of its chunk
// of /frames/counts); version 2 held them uncompressed. recover() reads both.
inline constexpr std::uint32_t kJournalVersion = 3;
inline constexpr std::uint32_t kOldestJournalVersion = 2;
inline constexpr std::size_t kRecordHeaderBytes = 24;
inline constexpr std::size_t kFrameFieldsBytes = 56;  // a frame record's payload before its counts
// Where a frame record's counts begin.
inline constexpr std::size_t kFrameCountsOffset = kRecordHeaderBytes + kFrameFieldsBytes;

enum RecordType : std::uint32_t { kSession = 1, kFrame = 2, kSubSequence = 3, kEnd = 4 };

using Bytes = std::vector<unsigned char>;

// Each appends one whole record, header and CRCs included, to `b`.
void encode_session(Bytes& b, const SessionInfo& info);
void encode_sub_sequence(Bytes& b, const SubSequenceRecord& r);
// The end of the session; `error` (UTF-8) is why it ended in error, empty for a clean end.
void encode_end(Bytes& b, const std::string& error);

// A frame record is encoded in place, into memory sized for it (frame_record_bytes): a batch
// is one buffer of back-to-back records, and each frame's stored counts (its compressed chunk)
// are copied straight into it, at record + kFrameCountsOffset. Once they are there,
// encode_frame writes the fields after the header and then seals the header.
std::size_t frame_record_bytes(std::size_t stored_counts_bytes);
void encode_frame(unsigned char* record, const DetectorFrame& f, std::size_t stored_counts_bytes);

struct RecordHeader {
  std::uint32_t type = 0;
  std::uint64_t payload_bytes = 0;
  std::uint32_t payload_crc = 0;
};
// Reads the kRecordHeaderBytes at `bytes`; false if the magic or the header's own CRC is wrong.
bool decode_record_header(const unsigned char* bytes, RecordHeader& header);
bool payload_matches_crc(const RecordHeader& header, const Bytes& payload);

// Each decodes one record's whole payload; false if it is short, has bytes left over, or holds a
// value out of range. decode_session sets `version` as soon as it is read, so that a caller can
// name an unsupported one. decode_frame fills f's fields (its counts stay empty) and points
// `stored` at the counts as the journal holds them, inside `payload`: for version 2 the
// session's dtype uncompressed (checked to be exactly that size), for version 3 the frame's
// bitshuffle-LZ4 chunk (not yet checked: the caller decodes it).
bool decode_session(const Bytes& payload, SessionInfo& info, std::uint32_t& version);
bool decode_frame(const Bytes& payload, const SessionInfo& info, std::uint32_t version,
                  DetectorFrame& f, std::span<const unsigned char>& stored);
bool decode_sub_sequence(const Bytes& payload, SubSequenceRecord& s);

// Whether a live session (of this or another process) holds the journal's lock.
bool journal_in_use(const std::filesystem::path& path);

// The journal file, opened once per session: append, then fdatasync.
class JournalWriter {
 public:
  JournalWriter() = default;
  ~JournalWriter() { close(); }
  JournalWriter(const JournalWriter&) = delete;
  JournalWriter& operator=(const JournalWriter&) = delete;

  // Fails if the file exists. Holds an exclusive flock on it until close(), which
  // journal_in_use() sees. max_bytes: RecorderConfig::max_journal_bytes.
  Status create(const std::filesystem::path& path, std::uint64_t max_bytes, int fault_errno);
  // All of `bytes` is on disk when this returns Ok. On failure the file is cut back to its old
  // length (best effort), so that it still ends with a whole record.
  Status append(const Bytes& bytes);
  void close();

 private:
  Status roll_back(std::string_view what, int err);

  std::filesystem::path path_;
  int fd_ = -1;
  std::uint64_t size_ = 0;
  std::uint64_t max_bytes_ = 0;
  int fault_errno_ = 0;
};

}  // namespace ptypilot::recorder
