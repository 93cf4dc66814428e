#include "recorder_journal.hpp"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>
#include <zlib.h>

#include <bit>
#include <cerrno>
#include <cstring>
#include <string>

#include "recorder_disk.hpp"

namespace ptypilot::recorder {
namespace fs = std::filesystem;

// The journal is written with memcpy of native values; its format is little-endian.
static_assert(std::endian::native == std::endian::little, "the journal format is little-endian");

namespace {

constexpr std::uint32_t kJournalMagic = 0x4A595450;  // "PTYJ" as bytes

// zlib's, which the format names: any reader can check a journal with its own zlib.
std::uint32_t record_crc32(const unsigned char* p, std::size_t n) {
  return static_cast<std::uint32_t>(::crc32_z(0, p, n));
}

// ---- The counts' dtype (SessionInfo::frame_dtype). In the journal it is stored as the
// ptypilot.wire.FrameHeader.DType number: 1 uint8, 2 uint16, 3 uint32, 4 float32.
std::uint32_t dtype_code(PixelType t) {
  switch (t) {
    case PixelType::kUint8:
      return 1;
    case PixelType::kUint16:
      return 2;
    case PixelType::kUint32:
      return 3;
    case PixelType::kFloat32:
      return 4;
  }
  return 0;
}

bool dtype_from_code(std::uint32_t code, PixelType& t) {
  switch (code) {
    case 1:
      t = PixelType::kUint8;
      return true;
    case 2:
      t = PixelType::kUint16;
      return true;
    case 3:
      t = PixelType::kUint32;
      return true;
    case 4:
      t = PixelType::kFloat32;
      return true;
    default:
      return false;
  }
}

// ---- Encoding.
template <typename T>
void put(Bytes& b, const T& value) {
  const std::size_t at = b.size();
  b.resize(at + sizeof(T));
  std::memcpy(b.data() + at, &value, sizeof(T));
}

void put_raw(Bytes& b, const void* data, std::size_t bytes) {
  const std::size_t at = b.size();
  b.resize(at + bytes);
  if (bytes) std::memcpy(b.data() + at, data, bytes);
}

void put_string(Bytes& b, const std::string& s) {
  put(b, static_cast<std::uint32_t>(s.size()));
  put_raw(b, s.data(), s.size());
}

void put_positions(Bytes& b, const std::vector<Vec2>& positions) {
  for (const Vec2& p : positions) {
    put(b, p.y);
    put(b, p.x);
  }
}

// A record is begun by reserving its header and finished once the payload is in place, so that
// the payload is encoded straight into the output buffer, not copied.
std::size_t begin_record(Bytes& b) {
  const std::size_t start = b.size();
  b.resize(start + kRecordHeaderBytes);
  return start;
}

// Fills in the header of a record whose payload follows it at h + kRecordHeaderBytes.
void seal_record(unsigned char* h, std::uint64_t payload, RecordType type) {
  const std::uint32_t payload_crc = record_crc32(h + kRecordHeaderBytes, payload);
  const std::uint32_t t = type;
  std::memcpy(h, &kJournalMagic, 4);
  std::memcpy(h + 4, &t, 4);
  std::memcpy(h + 8, &payload, 8);
  std::memcpy(h + 16, &payload_crc, 4);
  const std::uint32_t header_crc = record_crc32(h, 20);
  std::memcpy(h + 20, &header_crc, 4);
}

void finish_record(Bytes& b, std::size_t start, RecordType type) {
  seal_record(b.data() + start, b.size() - start - kRecordHeaderBytes, type);
}

// ---- Decoding: bounds-checked reads of one record's payload.
class Reader {
 public:
  explicit Reader(const Bytes& payload) : data_(payload.data()), size_(payload.size()) {}
  template <typename T>
  bool get(T& value) {
    if (size_ - pos_ < sizeof(T)) return false;
    std::memcpy(&value, data_ + pos_, sizeof(T));
    pos_ += sizeof(T);
    return true;
  }
  bool get_raw(void* out, std::size_t bytes) {
    if (size_ - pos_ < bytes) return false;
    if (bytes) std::memcpy(out, data_ + pos_, bytes);
    pos_ += bytes;
    return true;
  }
  bool get_string(std::string& s) {
    std::uint32_t n = 0;
    if (!get(n) || size_ - pos_ < n) return false;
    s.assign(reinterpret_cast<const char*>(data_ + pos_), n);
    pos_ += n;
    return true;
  }
  bool get_positions(std::uint32_t n, std::vector<Vec2>& out) {
    if ((size_ - pos_) / 16 < n) return false;
    out.resize(n);
    for (Vec2& p : out) {
      get(p.y);
      get(p.x);
    }
    return true;
  }
  bool at_end() const { return pos_ == size_; }

 private:
  const unsigned char* data_;
  std::size_t size_;
  std::size_t pos_ = 0;
};

}  // namespace

void encode_session(Bytes& b, const SessionInfo& info) {
  const std::size_t start = begin_record(b);
  put(b, kJournalVersion);
  put(b, static_cast<std::uint32_t>(info.frame_rows));
  put(b, static_cast<std::uint32_t>(info.frame_cols));
  put(b, dtype_code(info.frame_dtype));
  put(b, info.pixel_A);
  put_string(b, info.session_id);
  put_string(b, info.config_json);
  put_string(b, info.versions_json);
  finish_record(b, start, kSession);
}

std::size_t frame_record_bytes(std::size_t stored_counts_bytes) {
  return kRecordHeaderBytes + kFrameFieldsBytes + stored_counts_bytes;
}

void encode_frame(unsigned char* record, const DetectorFrame& f,
                  std::size_t stored_counts_bytes) {
  unsigned char* p = record + kRecordHeaderBytes;
  const auto field = [&p](const auto& value) {
    std::memcpy(p, &value, sizeof value);
    p += sizeof value;
  };
  field(f.frame_index);
  field(f.timestamp_ns);
  field(f.sub_sequence);
  field(f.position_index);
  field(f.position_A.y);
  field(f.position_A.x);
  field(f.electrons_per_frame);
  field(static_cast<std::uint32_t>(f.rows));
  field(static_cast<std::uint32_t>(f.cols));
  seal_record(record, kFrameFieldsBytes + stored_counts_bytes, kFrame);
}

void encode_sub_sequence(Bytes& b, const SubSequenceRecord& r) {
  const std::size_t start = begin_record(b);
  put(b, r.index);
  put(b, static_cast<std::uint32_t>(r.proposed_A.size()));
  put(b, static_cast<std::uint32_t>(r.approved_A.size()));
  put(b, static_cast<std::uint32_t>(r.potential.rows()));
  put(b, static_cast<std::uint32_t>(r.potential.cols()));
  put(b, std::uint32_t{0});
  put_positions(b, r.proposed_A);
  put_positions(b, r.approved_A);
  put_raw(b, r.potential.data(), r.potential.size() * sizeof(float));
  finish_record(b, start, kSubSequence);
}

void encode_end(Bytes& b, const std::string& error) {
  const std::size_t start = begin_record(b);
  put_raw(b, error.data(), error.size());
  finish_record(b, start, kEnd);
}

bool decode_record_header(const unsigned char* h, RecordHeader& header) {
  std::uint32_t magic = 0, header_crc = 0;
  std::memcpy(&magic, h, 4);
  std::memcpy(&header.type, h + 4, 4);
  std::memcpy(&header.payload_bytes, h + 8, 8);
  std::memcpy(&header.payload_crc, h + 16, 4);
  std::memcpy(&header_crc, h + 20, 4);
  return magic == kJournalMagic && header_crc == record_crc32(h, 20);
}

bool payload_matches_crc(const RecordHeader& header, const Bytes& payload) {
  return record_crc32(payload.data(), payload.size()) == header.payload_crc;
}

bool decode_session(const Bytes& payload, SessionInfo& info, std::uint32_t& version) {
  Reader r(payload);
  std::uint32_t rows = 0, cols = 0, dtype = 0;
  if (!r.get(version) || version < kOldestJournalVersion || version > kJournalVersion ||
      !r.get(rows) || !r.get(cols) ||
      !r.get(dtype) || !r.get(info.pixel_A) || !r.get_string(info.session_id) ||
      !r.get_string(info.config_json) || !r.get_string(info.versions_json) || !r.at_end())
    return false;
  if (rows == 0 || cols == 0 || rows > (1u << 16) || cols > (1u << 16)) return false;
  if (!dtype_from_code(dtype, info.frame_dtype)) return false;
  info.frame_rows = static_cast<int>(rows);
  info.frame_cols = static_cast<int>(cols);
  return true;
}

bool decode_frame(const Bytes& payload, const SessionInfo& info, std::uint32_t version,
                  DetectorFrame& f, std::span<const unsigned char>& stored) {
  Reader r(payload);
  std::uint32_t rows = 0, cols = 0;
  if (!r.get(f.frame_index) || !r.get(f.timestamp_ns) || !r.get(f.sub_sequence) ||
      !r.get(f.position_index) || !r.get(f.position_A.y) || !r.get(f.position_A.x) ||
      !r.get(f.electrons_per_frame) || !r.get(rows) || !r.get(cols))
    return false;
  if (static_cast<int>(rows) != info.frame_rows || static_cast<int>(cols) != info.frame_cols)
    return false;
  f.session_id = info.session_id;
  f.rows = info.frame_rows;
  f.cols = info.frame_cols;
  f.dtype = info.frame_dtype;
  stored = std::span<const unsigned char>(payload).subspan(kFrameFieldsBytes);
  const std::size_t raw_bytes =
      static_cast<std::size_t>(rows) * cols * pixel_size(info.frame_dtype);
  return version >= 3 || stored.size() == raw_bytes;
}

bool decode_sub_sequence(const Bytes& payload, SubSequenceRecord& s) {
  Reader r(payload);
  std::uint32_t n_proposed = 0, n_approved = 0, rows = 0, cols = 0, reserved = 0;
  if (!r.get(s.index) || !r.get(n_proposed) || !r.get(n_approved) || !r.get(rows) ||
      !r.get(cols) || !r.get(reserved) || !r.get_positions(n_proposed, s.proposed_A) ||
      !r.get_positions(n_approved, s.approved_A))
    return false;
  if (rows > (1u << 16) || cols > (1u << 16)) return false;
  s.potential = RealImage(static_cast<int>(rows), static_cast<int>(cols));
  return r.get_raw(s.potential.data(), s.potential.size() * sizeof(float)) && r.at_end();
}

bool journal_in_use(const fs::path& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return false;
  const bool busy = ::flock(fd, LOCK_SH | LOCK_NB) != 0 && errno == EWOULDBLOCK;
  ::close(fd);  // drops our lock too
  return busy;
}

Status JournalWriter::create(const fs::path& path, std::uint64_t max_bytes, int fault_errno) {
  path_ = path;
  max_bytes_ = max_bytes;
  fault_errno_ = fault_errno;
  fd_ = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_APPEND | O_CLOEXEC, 0644);
  if (fd_ < 0) return errno_status(path_, "create", errno);
  // Held until close (or the process dies): recovery and the orphan scan leave a journal that
  // is being written alone. A new file cannot be locked by anyone else yet.
  if (::flock(fd_, LOCK_EX | LOCK_NB) != 0) return errno_status(path_, "lock", errno);
  return Status::Ok();
}

Status JournalWriter::append(const Bytes& bytes) {
  std::size_t allowed = bytes.size();
  bool simulate_full = false;
  if (max_bytes_ != 0 && size_ + bytes.size() > max_bytes_) {
    allowed = max_bytes_ > size_ ? static_cast<std::size_t>(max_bytes_ - size_) : 0;
    simulate_full = true;
  }
  std::size_t done = 0;
  while (done < allowed) {
    const ssize_t w = ::write(fd_, bytes.data() + done, allowed - done);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) return roll_back("write", w < 0 ? errno : EIO);
    done += static_cast<std::size_t>(w);
  }
  if (simulate_full) return roll_back("write", fault_errno_);
  if (::fdatasync(fd_) != 0) return roll_back("fdatasync", errno);
  size_ += bytes.size();
  return Status::Ok();
}

void JournalWriter::close() {
  if (fd_ >= 0) ::close(fd_);
  fd_ = -1;
}

Status JournalWriter::roll_back(std::string_view what, int err) {
  if (::ftruncate(fd_, static_cast<off_t>(size_)) == 0) (void)::fdatasync(fd_);
  return errno_status(path_, what, err);
}

}  // namespace ptypilot::recorder
