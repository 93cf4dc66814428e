// Hdf5Recorder::recover: a journal replayed into a new HDF5 file, as far as its records are whole.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <exception>
#include <span>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "hdf5_session_writer.hpp"
#include "ptypilot/record/hdf5_recorder.hpp"
#include "ptypilot/wire/compression.hpp"
#include "ptypilot/wire/hdf5_support.hpp"
#include "ptypilot/wire/log.hpp"
#include "recorder_disk.hpp"
#include "recorder_journal.hpp"

namespace ptypilot {
namespace fs = std::filesystem;
using recorder::Bytes;
using recorder::decode_frame;
using recorder::decode_record_header;
using recorder::decode_session;
using recorder::decode_sub_sequence;
using recorder::errno_status;
using recorder::errno_text;
using recorder::journal_in_use;
using recorder::read_session_file_state;
using recorder::SessionFileState;
using recorder::sync_directory;
using recorder::kEnd;
using recorder::kFrame;
using recorder::Hdf5SessionWriter;
using recorder::kJournalVersion;
using recorder::kOldestJournalVersion;
using recorder::kRecordHeaderBytes;
using recorder::kSession;
using recorder::kSubSequence;
using recorder::payload_matches_crc;
using recorder::RecordHeader;

namespace {

constexpr std::size_t kRecoverBatch = 64;  // frames appended per HDF5 call

// Reads exactly n bytes unless the file ends first; returns how many it read, or -1 with errno.
ssize_t read_full(int fd, unsigned char* out, std::size_t n) {
  std::size_t done = 0;
  while (done < n) {
    const ssize_t r = ::read(fd, out + done, n - done);
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) return -1;
    if (r == 0) break;
    done += static_cast<std::size_t>(r);
  }
  return static_cast<ssize_t>(done);
}

}  // namespace

Status recover_journal(const fs::path& journal, const fs::path& h5_out, RecoveryReport* report,
                       const std::string& interrupted_note);

Status Hdf5Recorder::recover(const fs::path& journal, const fs::path& h5_out) {
  return recover(journal, h5_out, nullptr);
}

Status Hdf5Recorder::recover(const fs::path& journal, const fs::path& h5_out,
                             RecoveryReport* report) {
  return recover_journal(journal, h5_out, report, "");
}

Status recover_journal(const fs::path& journal, const fs::path& h5_out, RecoveryReport* report,
                       const std::string& interrupted_note) {
  try {
    RecoveryReport found;
    std::error_code ec;
    if (!fs::is_regular_file(journal, ec))
      return invalid_argument("recover: journal " + journal.string() + " is not a file");
    if (fs::exists(h5_out, ec) || ec)
      return failed_precondition("recover: " + h5_out.string() +
                                 " already exists; recovery never overwrites a file");
    const int fd = ::open(journal.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) return errno_status(journal, "recover: open", errno);
    struct Closer {
      int fd;
      ~Closer() { ::close(fd); }
    } closer{fd};
    struct stat st {};
    if (::fstat(fd, &st) != 0) return errno_status(journal, "recover: stat", errno);
    const auto file_size = static_cast<std::uint64_t>(st.st_size);

    std::uint64_t offset = 0;
    Bytes payload;
    std::string stop_reason;  // empty: the journal ended on a record boundary
    // Reads the next record; false at the end of the whole records (stop_reason says why).
    auto next = [&](std::uint32_t& type) -> bool {
      unsigned char h[kRecordHeaderBytes];
      const ssize_t got = read_full(fd, h, sizeof h);
      if (got < 0) throw std::runtime_error("read " + journal.string() + ": " + errno_text(errno));
      if (got == 0) return false;
      if (static_cast<std::size_t>(got) < sizeof h) {
        stop_reason = "torn record header";
        return false;
      }
      RecordHeader header;
      if (!decode_record_header(h, header)) {
        stop_reason = "corrupt record header";
        return false;
      }
      type = header.type;
      const std::uint64_t payload_bytes = header.payload_bytes;
      if (payload_bytes > file_size - offset - kRecordHeaderBytes) {
        stop_reason = "torn record (payload shorter than its header says)";
        return false;
      }
      payload.resize(payload_bytes);
      const ssize_t body = read_full(fd, payload.data(), payload.size());
      if (body < 0) throw std::runtime_error("read " + journal.string() + ": " + errno_text(errno));
      if (static_cast<std::uint64_t>(body) < payload_bytes) {
        stop_reason = "torn record (payload shorter than its header says)";
        return false;
      }
      if (!payload_matches_crc(header, payload)) {
        stop_reason = "record payload fails its CRC";
        return false;
      }
      offset += kRecordHeaderBytes + payload_bytes;
      return true;
    };

    std::uint32_t type = 0;
    SessionInfo info;
    std::uint32_t version = 0;
    const bool have_session = next(type) && type == kSession &&
                              decode_session(payload, info, version);
    const std::string readable = "versions " + std::to_string(kOldestJournalVersion) + " to " +
                                 std::to_string(kJournalVersion);
    if (!have_session && version != 0 &&
        (version < kOldestJournalVersion || version > kJournalVersion))
      return invalid_argument("recover: " + journal.string() +
                              " is a ptypilot journal of version " + std::to_string(version) +
                              "; this build reads " + readable + " only");
    if (!have_session)
      return invalid_argument("recover: " + journal.string() + " is not a ptypilot journal (" +
                              readable + "): it does not start with a valid session record");

    hdf5::CaptureErrors capture;
    Hdf5SessionWriter h5;
    if (Status s = h5.create(h5_out, info, fs::absolute(journal).string()); !s.ok())
      return {s.code(), "recover: " + s.message()};
    std::vector<DetectorFrame> batch;  // the frames' fields; their chunks are in batch_chunks
    std::vector<std::vector<std::byte>> batch_chunks(kRecoverBatch);
    std::vector<std::span<const unsigned char>> chunk_views;
    batch.reserve(kRecoverBatch);
    const std::size_t element = pixel_size(info.frame_dtype);
    const std::size_t counts_bytes =
        static_cast<std::size_t>(info.frame_rows) * info.frame_cols * element;
    std::vector<std::byte> decoded(counts_bytes);
    auto flush_batch = [&]() -> Status {
      if (batch.empty()) return Status::Ok();
      chunk_views.clear();
      for (std::size_t i = 0; i < batch.size(); ++i)
        chunk_views.emplace_back(reinterpret_cast<const unsigned char*>(batch_chunks[i].data()),
                                 batch_chunks[i].size());
      Status s = h5.append(batch, chunk_views);
      if (s.ok()) found.frames += batch.size();
      batch.clear();
      return s;
    };
    // A frame's chunk of /frames/counts from its journalled counts: version 3 holds the chunk
    // itself, decoded here once so that a record whose CRC matches but whose chunk would not
    // read back ends the journal like any malformed record; version 2 holds the raw counts,
    // compressed here as the live recorder now does.
    auto to_chunk = [&](std::span<const unsigned char> stored, std::vector<std::byte>& chunk) {
      const std::span<const std::byte> bytes(reinterpret_cast<const std::byte*>(stored.data()),
                                             stored.size());
      if (version >= 3) {
        if (!compression::decode_bitshuffle_lz4(bytes, element, decoded).ok()) return false;
        chunk.assign(bytes.begin(), bytes.end());
        return true;
      }
      return compression::encode_bitshuffle_lz4(bytes, element, &chunk).ok();
    };
    Status status;
    while (status.ok() && next(type)) {
      // Where this record began: a record that is whole but makes no sense ends the journal there.
      const std::uint64_t record_begin = offset - kRecordHeaderBytes - payload.size();
      if (type == kFrame) {
        DetectorFrame f;
        std::span<const unsigned char> stored;
        if (!decode_frame(payload, info, version, f, stored) ||
            !to_chunk(stored, batch_chunks[batch.size()])) {
          stop_reason = "malformed frame record";
          offset = record_begin;
          break;
        }
        batch.push_back(std::move(f));
        if (batch.size() == kRecoverBatch) status = flush_batch();
      } else if (type == kSubSequence) {
        SubSequenceRecord s;
        if (!decode_sub_sequence(payload, s)) {
          stop_reason = "malformed sub-sequence record";
          offset = record_begin;
          break;
        }
        status = flush_batch();
        if (status.ok()) status = h5.write_sub_sequence(s);
        if (status.ok()) ++found.sub_sequences;
      } else if (type == kEnd) {
        found.ended = true;
        found.error.assign(reinterpret_cast<const char*>(payload.data()), payload.size());
      } else {
        stop_reason = "unknown record type " + std::to_string(type);
        offset = record_begin;
        break;
      }
    }
    if (status.ok()) status = flush_batch();
    found.ignored_bytes = file_size - offset;
    found.stop_reason = stop_reason;
    if (!found.ended && found.error.empty())
      found.error = interrupted_note.empty()
                        ? "the session did not end (the daemon was killed or crashed, or the "
                          "recorder failed); recovered from its journal, with every "
                          "acknowledged frame"
                        : interrupted_note;
    found.complete = found.ended && found.error.empty() && status.ok();
    Status finished = h5.finish(found.complete, status.ok() ? found.error : status.message());
    if (!status.ok()) return {status.code(), "recover: " + status.message()};
    if (!finished.ok()) return {finished.code(), "recover: " + finished.message()};
    if (report) *report = found;

    std::string message = "recovered " + std::to_string(found.frames) + " frames and " +
                          std::to_string(found.sub_sequences) + " sub-sequences from " +
                          journal.string() + " into " + h5_out.string();
    if (!stop_reason.empty())
      message += "; stopped at byte " + std::to_string(offset) + " (" + stop_reason +
                 "), ignoring the last " + std::to_string(found.ignored_bytes) + " bytes";
    if (!found.ended) message += "; the session had not ended (complete = 0)";
    else if (!found.complete) message += "; the session had ended in error (complete = 0)";
    log::info("journal_recovered", {{"journal", journal.string()},
                                    {"h5", h5_out.string()},
                                    {"frames", found.frames},
                                    {"sub_sequences", found.sub_sequences},
                                    {"ended", found.ended},
                                    {"complete", found.complete},
                                    {"ignored_bytes", found.ignored_bytes},
                                    {"stop_reason", stop_reason}});
    return {StatusCode::kOk, message};
  } catch (const std::exception& e) {
    return {StatusCode::kInternal, std::string("recover: ") + e.what()};
  }
}

namespace {

// <dir>/<session>.<ext> for the session that `path` (its .journal, .h5 or .reserve) belongs to.
fs::path sibling(const fs::path& path, const char* ext) {
  fs::path p = path;
  if (p.extension() == ".recovering") p.replace_extension();  // <session>.h5.recovering
  return p.replace_extension(ext);
}

}  // namespace

Status Hdf5Recorder::recover_session(const fs::path& path, SessionRecovery* out) {
  try {
    const fs::path journal = sibling(path, ".journal");
    const fs::path h5 = sibling(path, ".h5");
    const fs::path reserve = sibling(path, ".reserve");
    fs::path temporary = h5;
    temporary += ".recovering";
    std::error_code ec;
    if (!fs::is_regular_file(journal, ec))
      return invalid_argument("recover: no journal " + journal.string() +
                              " (give the session's .journal or .h5)");
    if (journal_in_use(journal))
      return failed_precondition("recover: " + journal.string() +
                                 " belongs to a session that is still recording; it is "
                                 "recovered, if need be, after that session ends");
    SessionRecovery result;
    result.journal = journal;
    result.h5 = h5;
    // A journal without an end record left by a recorder failure (a full disk): the old file
    // says what happened, better than "did not end".
    std::string note;
    if (const SessionFileState old = read_session_file_state(h5);
        old.readable && !old.error.empty() && !old.interrupted())
      note = old.error;
    fs::remove(temporary, ec);  // a recovery that was itself interrupted
    Status s = recover_journal(journal, temporary, &result.report, note);
    if (!s.ok()) {
      fs::remove(temporary, ec);
      return s;
    }
    result.replaced = fs::exists(h5, ec);
    fs::rename(temporary, h5, ec);
    if (ec)
      return {StatusCode::kInternal, "recover: rename " + temporary.string() + " to " +
                                         h5.string() + ": " + ec.message()};
    (void)sync_directory(h5.parent_path().empty() ? fs::path(".") : h5.parent_path());
    result.reserve_removed = fs::remove(reserve, ec);
    const std::string message = s.message() + (result.replaced ? "; replaced the old file" : "") +
                                (result.reserve_removed ? "; removed " + reserve.string() : "");
    if (out) *out = std::move(result);
    return {StatusCode::kOk, message};
  } catch (const std::exception& e) {
    return {StatusCode::kInternal, std::string("recover: ") + e.what()};
  }
}

DirectoryScan Hdf5Recorder::scan_directory(const fs::path& directory) {
  DirectoryScan scan;
  std::error_code ec;
  if (!fs::is_directory(directory, ec)) return scan;
  std::vector<fs::path> journals, reserves;
  for (fs::directory_iterator it(directory, ec), end; !ec && it != end; it.increment(ec)) {
    const fs::path& p = it->path();
    if (!it->is_regular_file(ec)) continue;
    if (p.extension() == ".journal") journals.push_back(p);
    else if (p.extension() == ".reserve") reserves.push_back(p);
  }
  std::sort(journals.begin(), journals.end());
  std::sort(reserves.begin(), reserves.end());
  for (const fs::path& journal : journals) {
    if (journal_in_use(journal)) continue;
    if (read_session_file_state(sibling(journal, ".h5")).interrupted())
      scan.orphaned_journals.push_back(journal);
  }
  for (const fs::path& reserve : reserves) {
    // A live session holds its journal's lock; its reserve is its own.
    if (journal_in_use(sibling(reserve, ".journal"))) continue;
    if (fs::remove(reserve, ec)) scan.reserves_removed.push_back(reserve);
  }
  return scan;
}

nlohmann::json to_json(const SessionRecovery& r) {
  return {{"journal", r.journal.string()},
          {"h5", r.h5.string()},
          {"frames", r.report.frames},
          {"sub_sequences", r.report.sub_sequences},
          {"ended", r.report.ended},
          {"complete", r.report.complete},
          {"error", r.report.error},
          {"ignored_bytes", r.report.ignored_bytes},
          {"stop_reason", r.report.stop_reason},
          {"replaced", r.replaced},
          {"reserve_removed", r.reserve_removed}};
}

}  // namespace ptypilot
