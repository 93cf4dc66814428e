#include "ptypilot/record/hdf5_recorder.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <bit>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <exception>
#include <limits>
#include <set>
#include <stdexcept>
#include <utility>
#include <vector>

#include "hdf5_session_writer.hpp"
#include "ptypilot/wire/compression.hpp"
#include "ptypilot/wire/hdf5_support.hpp"
#include "ptypilot/wire/log.hpp"
#include "recorder_disk.hpp"
#include "recorder_journal.hpp"

namespace ptypilot {
namespace fs = std::filesystem;
using recorder::Bytes;
using recorder::check_free_space;
using recorder::create_reserve;
using recorder::encode_end;
using recorder::encode_frame;
using recorder::encode_session;
using recorder::encode_sub_sequence;
using recorder::errno_text;
using recorder::frame_record_bytes;
using recorder::Hdf5SessionWriter;
using recorder::JournalWriter;
using recorder::kFrameCountsOffset;
using recorder::sync_directory;

namespace {

// Converts float counts to uint8 or uint16 where every value is exactly representable (an
// integer in T's range); returns false if one is not (NaN, inf, a fraction, negative, too
// large), with `out` partly written. The counts of a whole batch pass through here on every
// write, so the loop is branch-free and the compiler vectorises it: adding 2^23 puts round(v)
// into the low mantissa bits for 0 <= v < 2^23, and v is exact iff that integer is v again
// (anything else, NaN included, compares unequal) and fits T.
template <typename T>
bool narrow_exact_small(const float* in, std::size_t n, unsigned char* out) {
  static_assert(sizeof(T) <= 2);
  constexpr std::uint32_t kMax = std::numeric_limits<T>::max();
  std::uint32_t inexact = 0;
  for (std::size_t i = 0; i < n; ++i) {
    const float v = in[i];
    const std::uint32_t m = std::bit_cast<std::uint32_t>(v + 8388608.0f) & 0x7FFFFFu;
    inexact |= static_cast<std::uint32_t>(static_cast<float>(static_cast<std::int32_t>(m)) != v) |
               static_cast<std::uint32_t>(m > kMax);
    const T t = static_cast<T>(m);
    std::memcpy(out + i * sizeof(T), &t, sizeof(T));
  }
  return inexact == 0;
}

// The same for uint32, whose range float does not cover exactly. Scalar: uint32 detectors are
// rare, and above 2^24 their counts were already rounded when they became float.
bool narrow_exact_u32(const float* in, std::size_t n, unsigned char* out) {
  bool exact = true;
  for (std::size_t i = 0; i < n; ++i) {
    const double v = in[i];
    std::uint32_t t = 0;
    if (v >= 0.0 && v <= 4294967295.0 && v == std::floor(v))
      t = static_cast<std::uint32_t>(v);
    else
      exact = false;
    std::memcpy(out + i * sizeof t, &t, sizeof t);
  }
  return exact;
}

// The first count that `t` cannot hold exactly, or n if there is none.
std::size_t first_inexact(const float* in, std::size_t n, PixelType t) {
  double max = 0.0;
  switch (t) {
    case PixelType::kUint8:
      max = 255.0;
      break;
    case PixelType::kUint16:
      max = 65535.0;
      break;
    case PixelType::kUint32:
      max = 4294967295.0;
      break;
    case PixelType::kFloat32:
      return n;
  }
  for (std::size_t i = 0; i < n; ++i) {
    const double v = in[i];
    if (!(v >= 0.0 && v <= max && v == std::floor(v))) return i;
  }
  return n;
}

// Writes `n` counts as `t` to `out` (little-endian); false if one is not exactly representable.
bool convert_counts(const float* in, std::size_t n, PixelType t, unsigned char* out) {
  switch (t) {
    case PixelType::kUint8:
      return narrow_exact_small<std::uint8_t>(in, n, out);
    case PixelType::kUint16:
      return narrow_exact_small<std::uint16_t>(in, n, out);
    case PixelType::kUint32:
      return narrow_exact_u32(in, n, out);
    case PixelType::kFloat32:
      if (n) std::memcpy(out, in, n * sizeof(float));
      return true;
  }
  return false;
}

// A frame that arrived as the detector's bitshuffle-LZ4 chunk of the session's dtype brings the
// bytes of its chunk of /frames/counts with it.
bool carries_chunk(const DetectorFrame& f, PixelType dtype) {
  return !f.bitshuffle_lz4.empty() && f.dtype == dtype;
}

std::span<const std::byte> stored_chunk(const DetectorFrame& f,
                                        const std::vector<std::byte>& compressed,
                                        PixelType dtype) {
  if (carries_chunk(f, dtype)) return f.bitshuffle_lz4;
  return compressed;
}

// Compresses the counts of frames [begin, end) that bring no chunk of their own into
// compressed[i], as `dtype`. Returns the first frame whose counts `dtype` cannot hold exactly,
// or `end`. Each thread that runs it converts through its own scratch.
std::size_t compress_frames(std::span<const DetectorFrame> frames, std::size_t begin,
                            std::size_t end, PixelType dtype,
                            std::vector<std::vector<std::byte>>& compressed) {
  thread_local std::vector<std::byte> converted;
  const std::size_t element = pixel_size(dtype);
  for (std::size_t i = begin; i < end; ++i) {
    const DetectorFrame& f = frames[i];
    if (carries_chunk(f, dtype)) continue;
    converted.resize(f.counts.size() * element);
    if (!convert_counts(f.counts.data(), f.counts.size(), dtype,
                        reinterpret_cast<unsigned char*>(converted.data())))
      return i;
    if (Status s = compression::encode_bitshuffle_lz4(converted, element, &compressed[i]); !s.ok())
      throw std::runtime_error("compressing frame " + std::to_string(f.frame_index) + ": " +
                               s.message());
  }
  return end;
}

bool valid_session_id(const std::string& id) {
  if (id.empty() || id.size() > 200 || id[0] == '.') return false;
  for (char c : id) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                    c == '.' || c == '_' || c == '-';
    if (!ok) return false;
  }
  return true;
}

std::string shape_text(int rows, int cols) {
  return std::to_string(rows) + "x" + std::to_string(cols);
}

}  // namespace

struct Hdf5Recorder::Session {
  SessionInfo info;
  JournalWriter journal;
  Hdf5SessionWriter h5;
  fs::path reserve;  // empty once released (or when RecorderConfig::reserve_bytes is 0)
  Bytes buffer;  // reused between calls: the encoded records of one write
  // Reused between calls: the chunks this recorder compressed (one slot per frame of a call),
  // and each frame's chunk as it lies in `buffer`.
  std::vector<std::vector<std::byte>> compressed;
  std::vector<std::span<const unsigned char>> chunks;
  std::uint64_t frames_since_flush = 0;
  std::set<std::uint32_t> sub_sequences;
};

Hdf5Recorder::Hdf5Recorder(RecorderConfig config) : config_(std::move(config)) {
  const fs::path& dir = config_.directory;
  if (dir.empty()) throw std::runtime_error("recorder: no directory configured");
  if (config_.sync_every_frames < 0)
    throw std::runtime_error("recorder: sync_every_frames must be >= 0, got " +
                             std::to_string(config_.sync_every_frames));
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec)
    throw std::runtime_error("recorder: cannot create directory " + dir.string() + ": " +
                             ec.message());
  if (!fs::is_directory(dir, ec))
    throw std::runtime_error("recorder: " + dir.string() + " is not a directory");
  // access(W_OK) would say yes to root on a read-only mount; creating a file is the real test.
  const fs::path probe = dir / (".ptypilot-write-test-" + std::to_string(::getpid()));
  const int fd = ::open(probe.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0)
    throw std::runtime_error("recorder: cannot write in directory " + dir.string() + ": " +
                             errno_text(errno));
  ::close(fd);
  ::unlink(probe.c_str());
}

Hdf5Recorder::~Hdf5Recorder() {
  if (!session_) return;
  try {
    (void)finish_session(false, "");
  } catch (...) {
    // A destructor must not throw; the journal still holds every acknowledged frame.
  }
}

Status Hdf5Recorder::begin_session(const SessionInfo& info) {
  try {
    if (session_)
      return failed_precondition("recorder: session " + session_->info.session_id +
                                 " is still open; call end_session first");
    if (!valid_session_id(info.session_id))
      return invalid_argument("recorder: session id '" + info.session_id +
                              "' is not a plain file name ([A-Za-z0-9._-], not starting with '.')");
    if (info.frame_rows <= 0 || info.frame_cols <= 0)
      return invalid_argument("recorder: frame shape " + shape_text(info.frame_rows,
                                                                   info.frame_cols) +
                              " must be positive");
    if (pixel_size(info.frame_dtype) == 0)
      return invalid_argument("recorder: frame_dtype " +
                              std::to_string(static_cast<int>(info.frame_dtype)) +
                              " is not a PixelType (uint8, uint16, uint32 or float32)");
    const fs::path h5 = config_.directory / (info.session_id + ".h5");
    const fs::path journal = config_.directory / (info.session_id + ".journal");
    for (const fs::path& p : {h5, journal}) {
      std::error_code ec;
      if (fs::exists(p, ec) || ec)
        return failed_precondition("recorder: " + p.string() +
                                   " already exists; a recorded session is never overwritten");
    }

    hdf5::CaptureErrors capture;
    auto session = std::make_unique<Session>();
    session->info = info;
    Status status;
    if (config_.reserve_bytes > 0) {
      session->reserve = config_.directory / (info.session_id + ".reserve");
      status = create_reserve(session->reserve, config_.reserve_bytes);
      if (!status.ok()) session->reserve.clear();
    }
    if (status.ok()) status = check_free_space(config_.directory, 0, config_.min_free_bytes);
    if (status.ok()) status = session->journal.create(journal, config_.max_journal_bytes,
                                                      config_.journal_fault_errno);
    const bool journal_created = status.ok() && fs::exists(journal);
    bool h5_created = false;
    if (status.ok()) {
      encode_session(session->buffer, info);
      status = session->journal.append(session->buffer);
    }
    if (status.ok()) {
      status = session->h5.create(h5, info, "");
      h5_created = session->h5.is_open();
    }
    if (status.ok()) status = sync_directory(config_.directory);
    if (!status.ok()) {
      // Nothing was acknowledged, so nothing is lost; removing the files lets a retry start clean.
      session->h5.close();
      session->journal.close();
      std::error_code ec;
      if (journal_created) fs::remove(journal, ec);
      if (h5_created) fs::remove(h5, ec);
      if (!session->reserve.empty()) fs::remove(session->reserve, ec);
      status = {status.code(), "recorder: " + status.message()};
      log::error("recorder_begin_failed", {{"session_id", info.session_id},
                                           {"error", status.message()}});
      return status;
    }
    session_ = std::move(session);
    h5_path_ = h5;
    journal_path_ = journal;
    frames_recorded_ = 0;
    error_ = Status::Ok();
    log::info("recording_started", {{"session_id", info.session_id},
                                    {"h5", h5.string()},
                                    {"journal", journal.string()},
                                    {"frame_shape", {info.frame_rows, info.frame_cols}},
                                    {"frame_dtype", to_string(info.frame_dtype)}});
    return Status::Ok();
  } catch (const std::exception& e) {
    return {StatusCode::kInternal, std::string("recorder: begin_session: ") + e.what()};
  }
}

Status Hdf5Recorder::write_frames(std::span<const DetectorFrame> frames) {
  try {
    if (!session_) return failed_precondition("recorder: write_frames without an open session");
    if (!error_.ok()) return error_;
    if (frames.empty()) return Status::Ok();
    const SessionInfo& info = session_->info;
    const auto pixels = static_cast<std::size_t>(info.frame_rows) * info.frame_cols;
    for (const DetectorFrame& f : frames) {
      if (f.rows != info.frame_rows || f.cols != info.frame_cols || f.counts.size() != pixels)
        return invalid_argument("recorder: frame " + std::to_string(f.frame_index) + " is " +
                                shape_text(f.rows, f.cols) + " with " +
                                std::to_string(f.counts.size()) + " counts; the session records " +
                                shape_text(info.frame_rows, info.frame_cols));
      if (!f.session_id.empty() && f.session_id != info.session_id)
        return invalid_argument("recorder: frame " + std::to_string(f.frame_index) +
                                " belongs to session " + f.session_id + ", not " +
                                info.session_id);
    }

    // Each frame's counts become its chunk of /frames/counts (bitshuffle + LZ4) before anything
    // is written: the journal holds that chunk, and the .h5 takes the same bytes, so a frame
    // costs its compressed size twice on disk instead of its raw size twice. A frame that came
    // as the detector's own bitshuffle-LZ4 chunk of the session's dtype keeps it untouched.
    const std::size_t n = frames.size();
    std::vector<std::vector<std::byte>>& compressed = session_->compressed;
    if (compressed.size() < n) compressed.resize(n);
    const std::size_t bad = compress_frames(frames, 0, n, info.frame_dtype, compressed);
    if (bad < n) {
      const DetectorFrame& f = frames[bad];
      const std::size_t at = first_inexact(f.counts.data(), pixels, info.frame_dtype);
      const auto cols = static_cast<std::size_t>(info.frame_cols);
      char value[32];
      std::snprintf(value, sizeof value, "%.10g", at < pixels ? f.counts[at] : 0.0f);
      return invalid_argument(
          "recorder: frame " + std::to_string(f.frame_index) + " has count " + value +
          " at row " + std::to_string(at / cols) + ", col " + std::to_string(at % cols) +
          ", which the session's " + to_string(info.frame_dtype) +
          " counts cannot hold exactly (SessionInfo::frame_dtype); nothing of this call "
          "was recorded");
    }

    // One buffer of back-to-back frame records: one write(2) for the journal, and the .h5
    // takes each frame's chunk from the same bytes. Sized without clear(): a vector only
    // zero-fills what it grows by, and every byte is overwritten below.
    std::size_t total = 0;
    for (std::size_t i = 0; i < n; ++i)
      total += frame_record_bytes(stored_chunk(frames[i], compressed[i], info.frame_dtype).size());
    Bytes& buffer = session_->buffer;
    buffer.resize(total);
    session_->chunks.resize(n);
    std::size_t at = 0;
    for (std::size_t i = 0; i < n; ++i) {
      const std::span<const std::byte> chunk =
          stored_chunk(frames[i], compressed[i], info.frame_dtype);
      unsigned char* record = buffer.data() + at;
      std::memcpy(record + kFrameCountsOffset, chunk.data(), chunk.size());
      encode_frame(record, frames[i], chunk.size());
      session_->chunks[i] = {record + kFrameCountsOffset, chunk.size()};
      at += frame_record_bytes(chunk.size());
    }

    hdf5::CaptureErrors capture;
    // The journal and the .h5 each take about the encoded size.
    if (Status s = check_free_space(config_.directory, 2 * buffer.size(), config_.min_free_bytes);
        !s.ok())
      return fail({s.code(), "recorder: " + s.message()});
    if (Status s = session_->journal.append(buffer); !s.ok())
      return fail({s.code(), "recorder: journal " + s.message()});
    if (Status s = session_->h5.append(frames, session_->chunks); !s.ok())
      return fail({s.code(), "recorder: " + s.message() + "; the frames are in the journal " +
                                 journal_path_.string() + " (recover() rebuilds the file)"});
    session_->frames_since_flush += frames.size();
    if (config_.sync_every_frames > 0 &&
        session_->frames_since_flush >= static_cast<std::uint64_t>(config_.sync_every_frames)) {
      if (Status s = session_->h5.flush(); !s.ok())
        return fail({s.code(), "recorder: " + s.message()});
      session_->frames_since_flush = 0;
    }
    frames_recorded_ += frames.size();
    return Status::Ok();
  } catch (const std::exception& e) {
    return fail({StatusCode::kInternal, std::string("recorder: write_frames: ") + e.what()});
  }
}

Status Hdf5Recorder::write_sub_sequence(const SubSequenceRecord& record) {
  try {
    if (!session_)
      return failed_precondition("recorder: write_sub_sequence without an open session");
    if (!error_.ok()) return error_;
    if (session_->sub_sequences.count(record.index))
      return invalid_argument("recorder: sub-sequence " + std::to_string(record.index) +
                              " was already recorded");
    hdf5::CaptureErrors capture;
    Bytes& buffer = session_->buffer;
    buffer.clear();
    encode_sub_sequence(buffer, record);
    if (Status s = check_free_space(config_.directory, 2 * buffer.size(), config_.min_free_bytes);
        !s.ok())
      return fail({s.code(), "recorder: " + s.message()});
    if (Status s = session_->journal.append(buffer); !s.ok())
      return fail({s.code(), "recorder: journal " + s.message()});
    session_->sub_sequences.insert(record.index);
    if (Status s = session_->h5.write_sub_sequence(record); !s.ok())
      return fail({s.code(), "recorder: " + s.message()});
    if (Status s = session_->h5.flush(); !s.ok())
      return fail({s.code(), "recorder: " + s.message()});
    session_->frames_since_flush = 0;
    return Status::Ok();
  } catch (const std::exception& e) {
    return fail({StatusCode::kInternal, std::string("recorder: write_sub_sequence: ") + e.what()});
  }
}

Status Hdf5Recorder::end_session(const std::string& error, const std::string& summary_json) {
  if (!session_) return failed_precondition("recorder: end_session without an open session");
  try {
    return finish_session(true, error, summary_json);
  } catch (const std::exception& e) {
    session_.reset();
    return {StatusCode::kInternal, std::string("recorder: end_session: ") + e.what()};
  }
}

Status Hdf5Recorder::finish_session(bool clean, const std::string& session_error,
                                    const std::string& summary_json) {
  hdf5::CaptureErrors capture;
  bool complete = clean && error_.ok() && session_error.empty();
  if (clean && error_.ok()) {
    // The end record goes first: a crash between it and the HDF5 close still recovers with the
    // same complete and error, and that is true, since everything is in the journal.
    session_->buffer.clear();
    encode_end(session_->buffer, session_error);
    if (Status s = session_->journal.append(session_->buffer); !s.ok()) {
      (void)fail({s.code(), "recorder: journal " + s.message()});
      complete = false;
    }
  }
  session_->journal.close();
  release_reserve();
  // The recorder's own error first: it is why the session ended when it failed first, and the
  // session's error then only repeats it.
  std::string error_text = error_.ok() ? session_error : error_.message();
  if (error_text.empty() && !clean) error_text = "recorder: closed without end_session";
  Status status = session_->h5.finish(complete, error_text, summary_json);
  const std::string session_id = session_->info.session_id;
  session_.reset();
  if (!status.ok()) status = {status.code(), "recorder: " + status.message()};
  log::info("recording_ended", {{"session_id", session_id},
                                {"h5", h5_path_.string()},
                                {"frames", frames_recorded_.load()},
                                {"complete", complete},
                                {"error", error_text},
                                {"finalised", status.ok()}});
  return status;
}

void Hdf5Recorder::release_reserve() {
  if (!session_ || session_->reserve.empty()) return;
  std::error_code ec;
  fs::remove(session_->reserve, ec);
  session_->reserve.clear();
}

Status Hdf5Recorder::fail(Status status) {
  if (error_.ok()) {
    error_ = std::move(status);
    release_reserve();  // the session stops; end_session may need the space to close the file
    log::error("recorder_failed", {{"h5", h5_path_.string()},
                                   {"journal", journal_path_.string()},
                                   {"frames_recorded", frames_recorded_.load()},
                                   {"error", error_.message()}});
  }
  return error_;
}

std::uint64_t Hdf5Recorder::frames_recorded() const { return frames_recorded_; }
fs::path Hdf5Recorder::output_path() const { return h5_path_; }
fs::path Hdf5Recorder::journal_path() const { return journal_path_; }
Status Hdf5Recorder::error() const { return error_; }

}  // namespace ptypilot
