#include "ptypilot/record/hdf5_recorder.hpp"

#include <fcntl.h>
#include <hdf5.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#if defined(__x86_64__)
#include <immintrin.h>
#endif

#include <array>
#include <bit>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <exception>
#include <limits>
#include <set>
#include <stdexcept>
#include <string_view>
#include <utility>
#include <vector>

#include "ptypilot/wire/hdf5_support.hpp"
#include "ptypilot/wire/log.hpp"

namespace ptypilot {
namespace fs = std::filesystem;
using hdf5::H5Id;

// The journal is written with memcpy of native values; its format is little-endian.
static_assert(std::endian::native == std::endian::little, "the journal format is little-endian");

namespace {

constexpr std::uint32_t kJournalMagic = 0x4A595450;  // "PTYJ" as bytes
constexpr std::uint32_t kJournalVersion = 2;
constexpr std::uint32_t kLayoutVersion = 1;
constexpr std::size_t kRecordHeaderBytes = 24;
constexpr std::size_t kFrameFieldsBytes = 56;  // a frame record's payload before its counts
constexpr hsize_t kRowChunk = 1024;        // chunk length of the 1-D and (N, 2) frame datasets
constexpr std::size_t kRecoverBatch = 64;  // frames appended per HDF5 call in recover()

enum RecordType : std::uint32_t { kSession = 1, kFrame = 2, kSubSequence = 3, kEnd = 4 };

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

// Little-endian in the file; the process is little-endian too (see the static_assert), so the
// bytes in memory are the file's bytes.
hid_t dtype_file_type(PixelType t) {
  switch (t) {
    case PixelType::kUint8:
      return H5T_STD_U8LE;
    case PixelType::kUint16:
      return H5T_STD_U16LE;
    case PixelType::kUint32:
      return H5T_STD_U32LE;
    case PixelType::kFloat32:
      return H5T_IEEE_F32LE;
  }
  return H5I_INVALID_HID;
}

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

// ---- CRC-32 (zlib's). Every journal byte goes through it before the write(2) it protects, so
// it must run well above disk speed: carry-less multiplication (PCLMULQDQ folding, Intel's "Fast
// CRC Computation for Generic Polynomials Using PCLMULQDQ", as in Chromium's zlib) where the CPU
// has it, slicing-by-8 tables otherwise and for the tail that is not a whole 16 bytes.
using CrcTables = std::array<std::array<std::uint32_t, 256>, 8>;

CrcTables make_crc_tables() {
  CrcTables t{};
  for (std::uint32_t i = 0; i < 256; ++i) {
    std::uint32_t c = i;
    for (int k = 0; k < 8; ++k) c = (c & 1) ? 0xEDB88320u ^ (c >> 1) : c >> 1;
    t[0][i] = c;
  }
  for (std::uint32_t i = 0; i < 256; ++i)
    for (int s = 1; s < 8; ++s) t[s][i] = (t[s - 1][i] >> 8) ^ t[0][t[s - 1][i] & 0xFF];
  return t;
}

const CrcTables& crc_tables() {
  static const CrcTables t = make_crc_tables();
  return t;
}

// Advances the CRC register (pre- and post-inversion are the caller's) over n bytes.
std::uint32_t crc32_tables(std::uint32_t crc, const unsigned char* p, std::size_t n) {
  const CrcTables& t = crc_tables();
  while (n >= 8) {
    std::uint32_t a, b;
    std::memcpy(&a, p, 4);
    std::memcpy(&b, p + 4, 4);
    a ^= crc;
    crc = t[7][a & 0xFF] ^ t[6][(a >> 8) & 0xFF] ^ t[5][(a >> 16) & 0xFF] ^ t[4][a >> 24] ^
          t[3][b & 0xFF] ^ t[2][(b >> 8) & 0xFF] ^ t[1][(b >> 16) & 0xFF] ^ t[0][b >> 24];
    p += 8;
    n -= 8;
  }
  while (n--) crc = t[0][(crc ^ *p++) & 0xFF] ^ (crc >> 8);
  return crc;
}

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define PTYPILOT_CRC32_PCLMUL 1
__attribute__((target("pclmul,sse4.1"))) inline __m128i clmul_load(const unsigned char* p) {
  return _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
}

// x * k (each 64-bit half by its constant, carry-less) ^ next: one fold.
__attribute__((target("pclmul,sse4.1"))) inline __m128i clmul_fold(__m128i x, __m128i k,
                                                                   __m128i next) {
  const __m128i lo = _mm_clmulepi64_si128(x, k, 0x00);
  const __m128i hi = _mm_clmulepi64_si128(x, k, 0x11);
  return _mm_xor_si128(_mm_xor_si128(hi, lo), next);
}

// The register over n bytes, n >= 64 and a multiple of 16. Constants: the bit-reflected
// x^k mod P(x) of the paper for folding by 512 and 128 bits, then the Barrett reduction.
__attribute__((target("pclmul,sse4.1"))) std::uint32_t crc32_pclmul(std::uint32_t crc,
                                                                    const unsigned char* buf,
                                                                    std::size_t n) {
  alignas(16) static const std::uint64_t k1k2[] = {0x0154442bd4, 0x01c6e41596};
  alignas(16) static const std::uint64_t k3k4[] = {0x01751997d0, 0x00ccaa009e};
  alignas(16) static const std::uint64_t k5k0[] = {0x0163cd6124, 0x0000000000};
  alignas(16) static const std::uint64_t poly[] = {0x01db710641, 0x01f7011641};

  __m128i x1 = _mm_xor_si128(clmul_load(buf), _mm_cvtsi32_si128(static_cast<int>(crc)));
  __m128i x2 = clmul_load(buf + 16);
  __m128i x3 = clmul_load(buf + 32);
  __m128i x4 = clmul_load(buf + 48);
  buf += 64;
  n -= 64;
  __m128i k = _mm_load_si128(reinterpret_cast<const __m128i*>(k1k2));
  while (n >= 64) {  // four independent folds by 512 bits
    x1 = clmul_fold(x1, k, clmul_load(buf));
    x2 = clmul_fold(x2, k, clmul_load(buf + 16));
    x3 = clmul_fold(x3, k, clmul_load(buf + 32));
    x4 = clmul_fold(x4, k, clmul_load(buf + 48));
    buf += 64;
    n -= 64;
  }
  k = _mm_load_si128(reinterpret_cast<const __m128i*>(k3k4));  // fold by 128 bits
  x1 = clmul_fold(x1, k, x2);
  x1 = clmul_fold(x1, k, x3);
  x1 = clmul_fold(x1, k, x4);
  while (n >= 16) {
    x1 = clmul_fold(x1, k, clmul_load(buf));
    buf += 16;
    n -= 16;
  }
  // 128 -> 64 bits.
  __m128i x = _mm_clmulepi64_si128(x1, k, 0x10);
  const __m128i mask32 = _mm_setr_epi32(~0, 0, ~0, 0);
  x1 = _mm_xor_si128(_mm_srli_si128(x1, 8), x);
  k = _mm_loadl_epi64(reinterpret_cast<const __m128i*>(k5k0));
  x = _mm_srli_si128(x1, 4);
  x1 = _mm_xor_si128(_mm_clmulepi64_si128(_mm_and_si128(x1, mask32), k, 0x00), x);
  // Barrett reduction to 32 bits.
  k = _mm_load_si128(reinterpret_cast<const __m128i*>(poly));
  x = _mm_clmulepi64_si128(_mm_and_si128(x1, mask32), k, 0x10);
  x = _mm_clmulepi64_si128(_mm_and_si128(x, mask32), k, 0x00);
  x1 = _mm_xor_si128(x1, x);
  return static_cast<std::uint32_t>(_mm_extract_epi32(x1, 1));
}

// PCLMULQDQ where the CPU has it and it agrees with the tables (checked once, on lengths and
// offsets that exercise every loop): a wrong CRC would make recover() stop at the first frame.
bool use_pclmul() {
  static const bool ok = [] {
    if (!__builtin_cpu_supports("pclmul") || !__builtin_cpu_supports("sse4.1")) return false;
    std::array<unsigned char, 1100> data{};
    std::uint32_t x = 12345;
    for (unsigned char& b : data) {
      x = x * 1103515245u + 12345u;
      b = static_cast<unsigned char>(x >> 24);
    }
    for (std::size_t offset : {0, 1, 7}) {
      for (std::size_t n : {64, 80, 128, 192, 208, 1024}) {
        const std::uint32_t seed = 0xFFFFFFFFu ^ static_cast<std::uint32_t>(n * 2654435761u);
        if (crc32_pclmul(seed, data.data() + offset, n) !=
            crc32_tables(seed, data.data() + offset, n))
          return false;
      }
    }
    return true;
  }();
  return ok;
}
#endif

std::uint32_t crc32(const unsigned char* p, std::size_t n) {
  std::uint32_t crc = 0xFFFFFFFFu;
#ifdef PTYPILOT_CRC32_PCLMUL
  if (n >= 64 && use_pclmul()) {
    const std::size_t whole = n & ~static_cast<std::size_t>(15);
    crc = crc32_pclmul(crc, p, whole);
    p += whole;
    n -= whole;
  }
#endif
  return ~crc32_tables(crc, p, n);
}

// ---- Journal encoding.
using Bytes = std::vector<unsigned char>;

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
  const std::uint32_t payload_crc = crc32(h + kRecordHeaderBytes, payload);
  const std::uint32_t t = type;
  std::memcpy(h, &kJournalMagic, 4);
  std::memcpy(h + 4, &t, 4);
  std::memcpy(h + 8, &payload, 8);
  std::memcpy(h + 16, &payload_crc, 4);
  const std::uint32_t header_crc = crc32(h, 20);
  std::memcpy(h + 20, &header_crc, 4);
}

void finish_record(Bytes& b, std::size_t start, RecordType type) {
  seal_record(b.data() + start, b.size() - start - kRecordHeaderBytes, type);
}

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

// A frame record is encoded in place, into memory sized for it (frame_record_bytes): a batch
// is one buffer of back-to-back records, and the counts are converted straight into it.
std::size_t frame_record_bytes(std::size_t counts_bytes) {
  return kRecordHeaderBytes + kFrameFieldsBytes + counts_bytes;
}

// Where a frame record's counts begin.
constexpr std::size_t kFrameCountsOffset = kRecordHeaderBytes + kFrameFieldsBytes;

// Writes a frame record's fields after its header; the counts (counts_bytes of them, already
// in place) follow, and then the header is sealed.
void encode_frame(unsigned char* record, const DetectorFrame& f, std::size_t counts_bytes) {
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
  seal_record(record, kFrameFieldsBytes + counts_bytes, kFrame);
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

void encode_end(Bytes& b) { finish_record(b, begin_record(b), kEnd); }

// Bounds-checked decoding of one record's payload.
class Reader {
 public:
  Reader(const unsigned char* data, std::size_t size) : data_(data), size_(size) {}
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

// ---- Errors.
std::string errno_text(int err) {
  return std::string(std::strerror(err)) + " (errno " + std::to_string(err) + ")";
}

// A full disk or quota is an outside condition a person can fix; anything else is an I/O fault.
Status errno_status(const fs::path& path, std::string_view what, int err) {
  const StatusCode code = (err == ENOSPC || err == EDQUOT) ? StatusCode::kUnavailable
                                                           : StatusCode::kInternal;
  return {code, path.string() + ": " + std::string(what) + " failed: " + errno_text(err)};
}

Status hdf5_status(const fs::path& path, std::string_view what) {
  const std::string detail = hdf5::error_text();
  const bool full = detail.find("No space left") != std::string::npos ||
                    detail.find("errno = 28,") != std::string::npos;
  return {full ? StatusCode::kUnavailable : StatusCode::kInternal,
          path.string() + ": " + std::string(what) + " failed: " + detail};
}

// Writes an attribute, replacing one of the same name.
bool write_attribute(hid_t object, const char* name, hid_t file_type, hid_t mem_type, hid_t space,
                     const void* value) {
  if (H5Aexists(object, name) > 0 && H5Adelete(object, name) < 0) return false;
  H5Id attr(H5Acreate2(object, name, file_type, space, H5P_DEFAULT, H5P_DEFAULT), H5Aclose);
  return attr.valid() && H5Awrite(attr.get(), mem_type, value) >= 0;
}

bool write_string_attribute(hid_t object, const char* name, const std::string& value) {
  H5Id type(H5Tcopy(H5T_C_S1), H5Tclose);
  if (!type.valid() || H5Tset_size(type.get(), H5T_VARIABLE) < 0 ||
      H5Tset_cset(type.get(), H5T_CSET_UTF8) < 0)
    return false;
  H5Id space(H5Screate(H5S_SCALAR), H5Sclose);
  const char* text = value.c_str();
  return space.valid() && write_attribute(object, name, type.get(), type.get(), space.get(), &text);
}

template <typename T>
bool write_scalar_attribute(hid_t object, const char* name, hid_t file_type, hid_t mem_type,
                            T value) {
  H5Id space(H5Screate(H5S_SCALAR), H5Sclose);
  return space.valid() && write_attribute(object, name, file_type, mem_type, space.get(), &value);
}

// A fixed-shape dataset, written whole (the per-sub-sequence ones).
bool write_dataset(hid_t parent, const char* name, hid_t file_type, hid_t mem_type,
                   std::vector<hsize_t> dims, const void* data) {
  H5Id space(H5Screate_simple(static_cast<int>(dims.size()), dims.data(), nullptr), H5Sclose);
  if (!space.valid()) return false;
  H5Id dset(H5Dcreate2(parent, name, file_type, space.get(), H5P_DEFAULT, H5P_DEFAULT,
                       H5P_DEFAULT),
            H5Dclose);
  if (!dset.valid()) return false;
  hsize_t elements = 1;
  for (hsize_t d : dims) elements *= d;
  if (elements == 0) return true;  // nothing to write; the empty shape is the record
  return H5Dwrite(dset.get(), mem_type, H5S_ALL, H5S_ALL, H5P_DEFAULT, data) >= 0;
}

std::vector<double> flatten(const std::vector<Vec2>& positions) {
  std::vector<double> out;
  out.reserve(positions.size() * 2);
  for (const Vec2& p : positions) {
    out.push_back(p.y);
    out.push_back(p.x);
  }
  return out;
}

// One session's HDF5 file: created with the layout in the header, frames appended to extendible
// datasets, closed with the `complete` attribute.
class H5File {
 public:
  ~H5File() { close(); }

  Status create(const fs::path& path, const SessionInfo& info, const std::string& recovered_from) {
    path_ = path;
    rows_ = static_cast<hsize_t>(info.frame_rows);
    cols_ = static_cast<hsize_t>(info.frame_cols);
    counts_type_ = dtype_file_type(info.frame_dtype);
    counts_bytes_ = static_cast<std::size_t>(rows_ * cols_) * pixel_size(info.frame_dtype);
    H5Id fapl(H5Pcreate(H5P_FILE_ACCESS), H5Pclose);
    // STRONG: closing the file closes whatever is still open in it, so a close after an error
    // never leaves the file half-open.
    if (!fapl.valid() || H5Pset_fclose_degree(fapl.get(), H5F_CLOSE_STRONG) < 0)
      return hdf5_status(path_, "file access properties");
    file_ = H5Id(H5Fcreate(path.c_str(), H5F_ACC_EXCL, H5P_DEFAULT, fapl.get()), H5Fclose);
    if (!file_.valid()) return hdf5_status(path_, "create");

    const hid_t root = file_.get();
    const std::int64_t shape[2] = {info.frame_rows, info.frame_cols};
    const hsize_t two = 2;
    H5Id shape_space(H5Screate_simple(1, &two, nullptr), H5Sclose);
    const std::uint8_t incomplete = 0;
    if (!write_string_attribute(root, "session_id", info.session_id) ||
        !write_string_attribute(root, "config_json", info.config_json) ||
        !write_string_attribute(root, "versions_json", info.versions_json) ||
        !write_scalar_attribute(root, "pixel_A", H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE,
                                info.pixel_A) ||
        !shape_space.valid() ||
        !write_attribute(root, "frame_shape", H5T_STD_I64LE, H5T_NATIVE_INT64, shape_space.get(),
                         shape) ||
        !write_scalar_attribute(root, "layout_version", H5T_STD_U32LE, H5T_NATIVE_UINT32,
                                kLayoutVersion) ||
        !write_scalar_attribute(root, "complete", H5T_STD_U8LE, H5T_NATIVE_UINT8, incomplete) ||
        (!recovered_from.empty() &&
         !write_string_attribute(root, "recovered_from", recovered_from)))
      return hdf5_status(path_, "root attributes");

    H5Id frames(H5Gcreate2(root, "frames", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT), H5Gclose);
    sub_sequences_ =
        H5Id(H5Gcreate2(root, "sub_sequences", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT), H5Gclose);
    if (!frames.valid() || !sub_sequences_.valid()) return hdf5_status(path_, "groups");

    const hid_t g = frames.get();
    // No chunk cache for the frames: each chunk is one frame, written whole (H5Dwrite_chunk)
    // and never read back, so caching only holds unwritten data in memory. Written straight
    // through, a full disk fails the write_frames() that hit it, and what HDF5 holds dirty
    // between flushes stays small (the reserve file in Hdf5Recorder covers it).
    H5Id uncached(H5Pcreate(H5P_DATASET_ACCESS), H5Pclose);
    if (!uncached.valid() || H5Pset_chunk_cache(uncached.get(), H5D_CHUNK_CACHE_NSLOTS_DEFAULT, 0,
                                                H5D_CHUNK_CACHE_W0_DEFAULT) < 0)
      return hdf5_status(path_, "dataset access properties");
    counts_ = extendible(g, "counts", counts_type_, {rows_, cols_}, 1, uncached.get());
    position_ = extendible(g, "position_A", H5T_IEEE_F64LE, {2}, kRowChunk);
    frame_index_ = extendible(g, "frame_index", H5T_STD_U64LE, {}, kRowChunk);
    sub_sequence_ = extendible(g, "sub_sequence", H5T_STD_U32LE, {}, kRowChunk);
    position_index_ = extendible(g, "position_index", H5T_STD_U32LE, {}, kRowChunk);
    timestamp_ = extendible(g, "timestamp_ns", H5T_STD_U64LE, {}, kRowChunk);
    electrons_ = extendible(g, "electrons_per_frame", H5T_IEEE_F64LE, {}, kRowChunk);
    for (const H5Id* d : datasets())
      if (!d->valid()) return hdf5_status(path_, "frame datasets");
    if (H5Fflush(root, H5F_SCOPE_LOCAL) < 0) return hdf5_status(path_, "flush");
    return Status::Ok();
  }

  bool is_open() const { return file_.valid(); }

  // Appends whole rows to every frame dataset: the fields of `frames` (their counts are not
  // used) and, for frame i, the counts at counts + i * stride, already in the session's dtype
  // and little-endian (the file's bytes). On failure every dataset is cut back to the old
  // length, so the file never holds a frame whose fields are only partly written.
  Status append(std::span<const DetectorFrame> frames, const unsigned char* counts,
                std::size_t stride) {
    const std::size_t n = frames.size();
    if (n == 0) return Status::Ok();
    position_buf_.resize(2 * n);
    frame_index_buf_.resize(n);
    sub_sequence_buf_.resize(n);
    position_index_buf_.resize(n);
    timestamp_buf_.resize(n);
    electrons_buf_.resize(n);
    for (std::size_t i = 0; i < n; ++i) {
      const DetectorFrame& f = frames[i];
      position_buf_[2 * i] = f.position_A.y;
      position_buf_[2 * i + 1] = f.position_A.x;
      frame_index_buf_[i] = f.frame_index;
      sub_sequence_buf_[i] = f.sub_sequence;
      position_index_buf_[i] = f.position_index;
      timestamp_buf_[i] = f.timestamp_ns;
      electrons_buf_[i] = f.electrons_per_frame;
    }
    const struct {
      const H5Id& dset;
      hid_t mem_type;
      std::vector<hsize_t> tail;
      const void* data;
    } items[] = {
        {counts_, H5I_INVALID_HID, {rows_, cols_}, nullptr},  // written chunk by chunk, below
        {position_, H5T_NATIVE_DOUBLE, {2}, position_buf_.data()},
        {frame_index_, H5T_NATIVE_UINT64, {}, frame_index_buf_.data()},
        {sub_sequence_, H5T_NATIVE_UINT32, {}, sub_sequence_buf_.data()},
        {position_index_, H5T_NATIVE_UINT32, {}, position_index_buf_.data()},
        {timestamp_, H5T_NATIVE_UINT64, {}, timestamp_buf_.data()},
        {electrons_, H5T_NATIVE_DOUBLE, {}, electrons_buf_.data()},
    };
    for (const auto& item : items) {
      const bool ok = item.data ? extend_and_write(item.dset.get(), item.mem_type, item.tail, n,
                                                   item.data)
                                : append_chunks(item.dset.get(), n, counts, stride);
      if (!ok) {
        Status status = hdf5_status(path_, "append frames");
        for (const auto& undo : items) set_length(undo.dset.get(), undo.tail, rows_written_);
        hdf5::forget_errors();
        return status;
      }
    }
    rows_written_ += n;
    return Status::Ok();
  }

  Status write_sub_sequence(const SubSequenceRecord& r) {
    char name[16];
    std::snprintf(name, sizeof name, "%04u", static_cast<unsigned>(r.index));
    H5Id group(H5Gcreate2(sub_sequences_.get(), name, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT),
               H5Gclose);
    const std::vector<double> proposed = flatten(r.proposed_A);
    const std::vector<double> approved = flatten(r.approved_A);
    const auto prows = static_cast<hsize_t>(r.potential.rows());
    const auto pcols = static_cast<hsize_t>(r.potential.cols());
    if (!group.valid() ||
        !write_dataset(group.get(), "proposed_A", H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE,
                       {r.proposed_A.size(), 2}, proposed.data()) ||
        !write_dataset(group.get(), "approved_A", H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE,
                       {r.approved_A.size(), 2}, approved.data()) ||
        !write_dataset(group.get(), "potential", H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, {prows, pcols},
                       r.potential.data()))
      return hdf5_status(path_, "write /sub_sequences/" + std::string(name));
    return Status::Ok();
  }

  Status flush() {
    if (H5Fflush(file_.get(), H5F_SCOPE_LOCAL) < 0) return hdf5_status(path_, "flush");
    return Status::Ok();
  }

  // Sets the final attributes and closes the file, then fsyncs it: a file that says complete = 1
  // is on disk. Closes even when an attribute cannot be written; returns the first failure.
  Status finish(bool complete, const std::string& error) {
    if (!file_.valid()) return Status::Ok();
    Status status;
    const std::uint8_t flag = complete ? 1 : 0;
    if (!write_scalar_attribute(file_.get(), "complete", H5T_STD_U8LE, H5T_NATIVE_UINT8, flag) ||
        (!error.empty() && !write_string_attribute(file_.get(), "error", error)))
      status = hdf5_status(path_, "final attributes");
    for (H5Id* d : datasets()) d->reset();
    sub_sequences_.reset();
    hdf5::forget_errors();  // a dataset that fails to close fails the file's close, reported below
    // Never retried: after a failed close (metadata that could not be written) HDF5 1.10 keeps a
    // half-destroyed file, and closing it again crashes, as does the library's cleanup at exit.
    // The reserve file exists to make this failure unlikely; the journal has every frame.
    if (H5Fclose(file_.release()) < 0) {
      const Status closed = hdf5_status(path_, "close");
      if (status.ok()) status = closed;
      log::error("recorder_close_failed",
                 {{"h5", path_.string()},
                  {"error", closed.message()},
                  {"note", "the .h5 is not readable; recover() rebuilds it from the journal. "
                           "HDF5 may crash when the process exits."}});
    }
    hdf5::forget_errors();
    const int fd = ::open(path_.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0 || ::fsync(fd) != 0) {
      if (status.ok()) status = errno_status(path_, "fsync", errno);
    }
    if (fd >= 0) ::close(fd);
    return status;
  }

  void close() {
    for (H5Id* d : datasets()) d->reset();
    sub_sequences_.reset();
    file_.reset();
  }

 private:
  std::array<H5Id*, 7> datasets() {
    return {&counts_, &position_, &frame_index_, &sub_sequence_, &position_index_, &timestamp_,
            &electrons_};
  }

  static H5Id extendible(hid_t parent, const char* name, hid_t file_type,
                         std::vector<hsize_t> tail, hsize_t chunk_rows,
                         hid_t dapl = H5P_DEFAULT) {
    std::vector<hsize_t> dims{0}, maxdims{H5S_UNLIMITED}, chunk{chunk_rows};
    for (hsize_t t : tail) {
      dims.push_back(t);
      maxdims.push_back(t);
      chunk.push_back(t);
    }
    const int rank = static_cast<int>(dims.size());
    H5Id space(H5Screate_simple(rank, dims.data(), maxdims.data()), H5Sclose);
    H5Id dcpl(H5Pcreate(H5P_DATASET_CREATE), H5Pclose);
    if (!space.valid() || !dcpl.valid() || H5Pset_chunk(dcpl.get(), rank, chunk.data()) < 0)
      return {};
    return H5Id(H5Dcreate2(parent, name, file_type, space.get(), H5P_DEFAULT, dcpl.get(), dapl),
                H5Dclose);
  }

  bool set_length(hid_t dset, const std::vector<hsize_t>& tail, hsize_t length) {
    std::vector<hsize_t> dims{length};
    dims.insert(dims.end(), tail.begin(), tail.end());
    return H5Dset_extent(dset, dims.data()) >= 0;
  }

  // Each frame is one chunk of /frames/counts, and its bytes are already the file's, so it goes
  // in with H5Dwrite_chunk: no selection, no type conversion, no gather copy (for small frames,
  // H5Dwrite's per-chunk bookkeeping cost more than the bytes).
  bool append_chunks(hid_t dset, hsize_t n, const unsigned char* counts, std::size_t stride) {
    if (!set_length(dset, {rows_, cols_}, rows_written_ + n)) return false;
    for (hsize_t i = 0; i < n; ++i) {
      const hsize_t offset[3] = {rows_written_ + i, 0, 0};
      if (H5Dwrite_chunk(dset, H5P_DEFAULT, 0, offset, counts_bytes_, counts + i * stride) < 0)
        return false;
    }
    return true;
  }

  bool extend_and_write(hid_t dset, hid_t mem_type, const std::vector<hsize_t>& tail, hsize_t n,
                        const void* data) {
    if (!set_length(dset, tail, rows_written_ + n)) return false;
    std::vector<hsize_t> start{rows_written_}, count{n};
    for (hsize_t t : tail) {
      start.push_back(0);
      count.push_back(t);
    }
    H5Id file_space(H5Dget_space(dset), H5Sclose);
    H5Id mem_space(H5Screate_simple(static_cast<int>(count.size()), count.data(), nullptr),
                   H5Sclose);
    return file_space.valid() && mem_space.valid() &&
           H5Sselect_hyperslab(file_space.get(), H5S_SELECT_SET, start.data(), nullptr,
                               count.data(), nullptr) >= 0 &&
           H5Dwrite(dset, mem_type, mem_space.get(), file_space.get(), H5P_DEFAULT, data) >= 0;
  }

  fs::path path_;
  hsize_t rows_ = 0;
  hsize_t cols_ = 0;
  hsize_t rows_written_ = 0;
  hid_t counts_type_ = H5I_INVALID_HID;  // a predefined type: not closed
  std::size_t counts_bytes_ = 0;        // one frame's counts, in the file
  H5Id file_, sub_sequences_;
  H5Id counts_, position_, frame_index_, sub_sequence_, position_index_, timestamp_, electrons_;
  std::vector<double> position_buf_, electrons_buf_;
  std::vector<std::uint64_t> frame_index_buf_, timestamp_buf_;
  std::vector<std::uint32_t> sub_sequence_buf_, position_index_buf_;
};

// ---- The journal file: append, then fdatasync.
class Journal {
 public:
  ~Journal() { close(); }

  Status create(const fs::path& path, std::uint64_t max_bytes) {
    path_ = path;
    max_bytes_ = max_bytes;
    fd_ = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_APPEND | O_CLOEXEC, 0644);
    if (fd_ < 0) return errno_status(path_, "create", errno);
    return Status::Ok();
  }

  // All of `bytes` is on disk when this returns Ok. On failure the file is cut back to its old
  // length (best effort), so that it still ends with a whole record.
  Status append(const Bytes& bytes) {
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
    if (simulate_full) return roll_back("write", ENOSPC);
    if (::fdatasync(fd_) != 0) return roll_back("fdatasync", errno);
    size_ += bytes.size();
    return Status::Ok();
  }

  void close() {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
  }

 private:
  Status roll_back(std::string_view what, int err) {
    if (::ftruncate(fd_, static_cast<off_t>(size_)) == 0) (void)::fdatasync(fd_);
    return errno_status(path_, what, err);
  }

  fs::path path_;
  int fd_ = -1;
  std::uint64_t size_ = 0;
  std::uint64_t max_bytes_ = 0;
};

// A new file's name is durable only once its directory is synced.
Status sync_directory(const fs::path& dir) {
  const int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return errno_status(dir, "open directory", errno);
  const int r = ::fsync(fd);
  const int err = errno;
  ::close(fd);
  return r == 0 ? Status::Ok() : errno_status(dir, "fsync directory", err);
}

// Space set aside on the recording's filesystem, given back on the first error so that the HDF5
// file can still be finalised when the disk is full: closing writes metadata, and HDF5 cannot
// close a file it cannot write (the file is then unreadable).
Status create_reserve(const fs::path& path, std::uint64_t bytes) {
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) return errno_status(path, "create reserve file", errno);
  const int err = ::posix_fallocate(fd, 0, static_cast<off_t>(bytes));  // returns the error
  ::close(fd);
  if (err == 0) return Status::Ok();
  ::unlink(path.c_str());
  return errno_status(path, "reserve " + std::to_string(bytes) + " bytes", err);
}

// Stops a session while the disk still has room, rather than at ENOSPC: HDF5 1.10 cannot
// close a file after a flush failed for lack of space (and then crashes at exit), so the
// recorder must never be the one to fill the disk. Best effort: no check if statvfs fails.
Status check_free_space(const fs::path& dir, std::uint64_t need, std::uint64_t keep_free) {
  if (keep_free == 0) return Status::Ok();
  struct statvfs st {};
  if (::statvfs(dir.c_str(), &st) != 0) return Status::Ok();
  const std::uint64_t avail = static_cast<std::uint64_t>(st.f_bavail) * st.f_frsize;
  if (avail >= need && avail - need >= keep_free) return Status::Ok();
  return {StatusCode::kUnavailable,
          dir.string() + ": no space left for recording: " + std::to_string(avail) +
              " bytes free, the write needs " + std::to_string(need) + " and " +
              std::to_string(keep_free) + " must stay free (RecorderConfig::min_free_bytes)"};
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
  Journal journal;
  H5File h5;
  fs::path reserve;  // empty once released (or when RecorderConfig::reserve_bytes is 0)
  Bytes buffer;  // reused between calls: the encoded records of one write
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
    (void)finish_session(false);
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
    if (status.ok()) status = session->journal.create(journal, config_.max_journal_bytes);
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

    // One buffer of back-to-back frame records, the counts converted straight into it: one
    // write(2) for the journal, and the .h5 takes each frame's counts from the same bytes.
    // Sized without clear(): a vector only zero-fills what it grows by, and every byte is
    // overwritten below.
    const std::size_t counts_bytes = pixels * pixel_size(info.frame_dtype);
    const std::size_t record_bytes = frame_record_bytes(counts_bytes);
    Bytes& buffer = session_->buffer;
    buffer.resize(frames.size() * record_bytes);
    for (std::size_t i = 0; i < frames.size(); ++i) {
      const DetectorFrame& f = frames[i];
      unsigned char* record = buffer.data() + i * record_bytes;
      if (!convert_counts(f.counts.data(), pixels, info.frame_dtype,
                          record + kFrameCountsOffset)) {
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
      encode_frame(record, f, counts_bytes);
    }

    hdf5::CaptureErrors capture;
    // The journal and the .h5 each take about the encoded size.
    if (Status s = check_free_space(config_.directory, 2 * buffer.size(), config_.min_free_bytes);
        !s.ok())
      return fail({s.code(), "recorder: " + s.message()});
    if (Status s = session_->journal.append(buffer); !s.ok())
      return fail({s.code(), "recorder: journal " + s.message()});
    if (Status s = session_->h5.append(frames, buffer.data() + kFrameCountsOffset, record_bytes);
        !s.ok())
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

Status Hdf5Recorder::end_session() {
  if (!session_) return failed_precondition("recorder: end_session without an open session");
  try {
    return finish_session(true);
  } catch (const std::exception& e) {
    session_.reset();
    return {StatusCode::kInternal, std::string("recorder: end_session: ") + e.what()};
  }
}

Status Hdf5Recorder::finish_session(bool clean) {
  hdf5::CaptureErrors capture;
  bool complete = clean && error_.ok();
  if (complete) {
    // The end record goes first: a crash between it and the HDF5 close still recovers as
    // complete, and that is true, since everything is in the journal.
    session_->buffer.clear();
    encode_end(session_->buffer);
    if (Status s = session_->journal.append(session_->buffer); !s.ok()) {
      (void)fail({s.code(), "recorder: journal " + s.message()});
      complete = false;
    }
  }
  session_->journal.close();
  release_reserve();
  std::string error_text = error_.message();
  if (error_text.empty() && !clean) error_text = "recorder: closed without end_session";
  Status status = session_->h5.finish(complete, error_text);
  const std::string session_id = session_->info.session_id;
  session_.reset();
  if (!status.ok()) status = {status.code(), "recorder: " + status.message()};
  log::info("recording_ended", {{"session_id", session_id},
                                {"h5", h5_path_.string()},
                                {"frames", frames_recorded_},
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
                                   {"frames_recorded", frames_recorded_},
                                   {"error", error_.message()}});
  }
  return error_;
}

std::uint64_t Hdf5Recorder::frames_recorded() const { return frames_recorded_; }
fs::path Hdf5Recorder::output_path() const { return h5_path_; }
fs::path Hdf5Recorder::journal_path() const { return journal_path_; }
Status Hdf5Recorder::error() const { return error_; }

namespace {

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

// `version` is set as soon as it is read, so that a caller can name an unsupported one.
bool parse_session(Reader& r, SessionInfo& info, std::uint32_t& version) {
  std::uint32_t rows = 0, cols = 0, dtype = 0;
  if (!r.get(version) || version != kJournalVersion || !r.get(rows) || !r.get(cols) ||
      !r.get(dtype) || !r.get(info.pixel_A) || !r.get_string(info.session_id) ||
      !r.get_string(info.config_json) || !r.get_string(info.versions_json) || !r.at_end())
    return false;
  if (rows == 0 || cols == 0 || rows > (1u << 16) || cols > (1u << 16)) return false;
  if (!dtype_from_code(dtype, info.frame_dtype)) return false;
  info.frame_rows = static_cast<int>(rows);
  info.frame_cols = static_cast<int>(cols);
  return true;
}

// Reads a frame record's fields into f (counts left empty) and appends its counts, as stored
// (the session's dtype, the file's bytes), to `counts`.
bool parse_frame(Reader& r, const SessionInfo& info, DetectorFrame& f, Bytes& counts) {
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
  const std::size_t bytes = static_cast<std::size_t>(rows) * cols * pixel_size(info.frame_dtype);
  const std::size_t at = counts.size();
  counts.resize(at + bytes);
  if (r.get_raw(counts.data() + at, bytes) && r.at_end()) return true;
  counts.resize(at);
  return false;
}

bool parse_sub_sequence(Reader& r, SubSequenceRecord& s) {
  std::uint32_t n_proposed = 0, n_approved = 0, rows = 0, cols = 0, reserved = 0;
  if (!r.get(s.index) || !r.get(n_proposed) || !r.get(n_approved) || !r.get(rows) ||
      !r.get(cols) || !r.get(reserved) || !r.get_positions(n_proposed, s.proposed_A) ||
      !r.get_positions(n_approved, s.approved_A))
    return false;
  if (rows > (1u << 16) || cols > (1u << 16)) return false;
  s.potential = RealImage(static_cast<int>(rows), static_cast<int>(cols));
  return r.get_raw(s.potential.data(), s.potential.size() * sizeof(float)) && r.at_end();
}

}  // namespace

Status Hdf5Recorder::recover(const fs::path& journal, const fs::path& h5_out) {
  return recover(journal, h5_out, nullptr);
}

Status Hdf5Recorder::recover(const fs::path& journal, const fs::path& h5_out,
                             RecoveryReport* report) {
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
      std::uint32_t magic = 0, payload_crc = 0, header_crc = 0;
      std::uint64_t payload_bytes = 0;
      std::memcpy(&magic, h, 4);
      std::memcpy(&type, h + 4, 4);
      std::memcpy(&payload_bytes, h + 8, 8);
      std::memcpy(&payload_crc, h + 16, 4);
      std::memcpy(&header_crc, h + 20, 4);
      if (magic != kJournalMagic || header_crc != crc32(h, 20)) {
        stop_reason = "corrupt record header";
        return false;
      }
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
      if (crc32(payload.data(), payload.size()) != payload_crc) {
        stop_reason = "record payload fails its CRC";
        return false;
      }
      offset += kRecordHeaderBytes + payload_bytes;
      return true;
    };

    std::uint32_t type = 0;
    SessionInfo info;
    std::uint32_t version = 0;
    bool have_session = next(type) && type == kSession;
    if (have_session) {
      Reader r(payload.data(), payload.size());
      have_session = parse_session(r, info, version);
    }
    if (!have_session && version != 0 && version != kJournalVersion)
      return invalid_argument("recover: " + journal.string() +
                              " is a ptypilot journal of version " + std::to_string(version) +
                              "; this build reads version " + std::to_string(kJournalVersion) +
                              " only");
    if (!have_session)
      return invalid_argument("recover: " + journal.string() +
                              " is not a ptypilot journal (version " +
                              std::to_string(kJournalVersion) +
                              "): it does not start with a valid session record");

    hdf5::CaptureErrors capture;
    H5File h5;
    if (Status s = h5.create(h5_out, info, fs::absolute(journal).string()); !s.ok())
      return {s.code(), "recover: " + s.message()};
    std::vector<DetectorFrame> batch;  // the frames' fields; their counts are in batch_counts
    Bytes batch_counts;
    batch.reserve(kRecoverBatch);
    const std::size_t counts_bytes = static_cast<std::size_t>(info.frame_rows) * info.frame_cols *
                                     pixel_size(info.frame_dtype);
    auto flush_batch = [&]() -> Status {
      if (batch.empty()) return Status::Ok();
      Status s = h5.append(batch, batch_counts.data(), counts_bytes);
      if (s.ok()) found.frames += batch.size();
      batch.clear();
      batch_counts.clear();
      return s;
    };
    Status status;
    while (status.ok() && next(type)) {
      // Where this record began: a record that is whole but makes no sense ends the journal there.
      const std::uint64_t record_begin = offset - kRecordHeaderBytes - payload.size();
      Reader r(payload.data(), payload.size());
      if (type == kFrame) {
        DetectorFrame f;
        if (!parse_frame(r, info, f, batch_counts)) {
          stop_reason = "malformed frame record";
          offset = record_begin;
          break;
        }
        batch.push_back(std::move(f));
        if (batch.size() == kRecoverBatch) status = flush_batch();
      } else if (type == kSubSequence) {
        SubSequenceRecord s;
        if (!parse_sub_sequence(r, s)) {
          stop_reason = "malformed sub-sequence record";
          offset = record_begin;
          break;
        }
        status = flush_batch();
        if (status.ok()) status = h5.write_sub_sequence(s);
        if (status.ok()) ++found.sub_sequences;
      } else if (type == kEnd) {
        found.ended = true;
      } else {
        stop_reason = "unknown record type " + std::to_string(type);
        offset = record_begin;
        break;
      }
    }
    if (status.ok()) status = flush_batch();
    found.ignored_bytes = file_size - offset;
    const std::string note =
        found.ended ? "" : "recovered from a journal without an end-of-session record";
    Status finished = h5.finish(found.ended && status.ok(), status.ok() ? note : status.message());
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
    log::info("journal_recovered", {{"journal", journal.string()},
                                    {"h5", h5_out.string()},
                                    {"frames", found.frames},
                                    {"sub_sequences", found.sub_sequences},
                                    {"ended", found.ended},
                                    {"ignored_bytes", found.ignored_bytes},
                                    {"stop_reason", stop_reason}});
    return {StatusCode::kOk, message};
  } catch (const std::exception& e) {
    return {StatusCode::kInternal, std::string("recover: ") + e.what()};
  }
}

}  // namespace ptypilot
