// Hdf5Recorder: every value written comes back from the HDF5 file, a full disk fails cleanly,
// and recover() rebuilds a file from a journal torn mid-record.
#include <hdf5.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <catch2/catch.hpp>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <limits>
#include <string>
#include <vector>

#include "ptypilot/record/hdf5_recorder.hpp"
#include "ptypilot/wire/compression.hpp"
#include "ptypilot/wire/hdf5_support.hpp"

namespace fs = std::filesystem;
using ptypilot::DetectorFrame;
using ptypilot::DirectoryScan;
using ptypilot::SessionRecovery;
using ptypilot::Hdf5Recorder;
using ptypilot::PixelType;
using ptypilot::RecorderConfig;
using ptypilot::RecoveryReport;
using ptypilot::SessionInfo;
using ptypilot::Status;
using ptypilot::StatusCode;
using ptypilot::SubSequenceRecord;
using ptypilot::Vec2;

#define REQUIRE_OK(expr)          \
  do {                            \
    const Status status_ = (expr); \
    INFO(status_.to_string());    \
    REQUIRE(status_.ok());        \
  } while (0)

namespace {

constexpr int kRows = 16;
constexpr int kCols = 16;

// A frame's counts as `dtype`, little-endian: the bytes the journal and the file compress.
std::vector<std::byte> counts_as(const DetectorFrame& f, PixelType dtype) {
  std::vector<std::byte> out(f.counts.size() * ptypilot::pixel_size(dtype));
  for (std::size_t i = 0; i < f.counts.size(); ++i) {
    const float v = f.counts[i];
    switch (dtype) {
      case PixelType::kUint8: {
        const auto u = static_cast<std::uint8_t>(v);
        std::memcpy(out.data() + i, &u, 1);
        break;
      }
      case PixelType::kUint16: {
        const auto u = static_cast<std::uint16_t>(v);
        std::memcpy(out.data() + 2 * i, &u, 2);
        break;
      }
      case PixelType::kUint32: {
        const auto u = static_cast<std::uint32_t>(v);
        std::memcpy(out.data() + 4 * i, &u, 4);
        break;
      }
      case PixelType::kFloat32:
        std::memcpy(out.data() + 4 * i, &v, 4);
        break;
    }
  }
  return out;
}

// A frame's chunk of /frames/counts: its counts bitshuffled and LZ4-compressed.
std::vector<std::byte> chunk_of(const DetectorFrame& f, PixelType dtype) {
  std::vector<std::byte> chunk;
  REQUIRE(ptypilot::compression::encode_bitshuffle_lz4(counts_as(f, dtype),
                                                       ptypilot::pixel_size(dtype), &chunk)
              .ok());
  return chunk;
}

// A frame record's size by the documented format: header, 56 bytes of fields, the frame's
// compressed chunk.
std::uint64_t frame_record_bytes(const DetectorFrame& f, PixelType dtype) {
  return 24 + 56 + chunk_of(f, dtype).size();
}

class TempDir {
 public:
  TempDir() {
    static std::atomic<int> counter{0};
    path_ = fs::temp_directory_path() / ("ptypilot-recorder-" + std::to_string(::getpid()) + "-" +
                                         std::to_string(counter++));
    fs::remove_all(path_);
    fs::create_directories(path_);
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path_, ec);
  }
  const fs::path& path() const { return path_; }

 private:
  fs::path path_;
};

// The reference values; tests/python/test_recorder_h5py.py computes the same ones.
SessionInfo reference_info(const std::string& id, PixelType dtype = PixelType::kFloat32) {
  SessionInfo info;
  info.frame_dtype = dtype;
  info.session_id = id;
  info.config_json = R"({"session": {"positions": 250}, "note": "ångström"})";
  info.versions_json = R"({"ptypilot": "test", "hdf5": "1.10"})";
  info.frame_rows = kRows;
  info.frame_cols = kCols;
  info.pixel_A = 0.125;
  return info;
}

// Counts that `dtype` holds exactly: for float32 they have a fraction, for uint32 they exceed
// 2^24 (every one still a float), for uint8 they wrap at 256.
float reference_count(PixelType dtype, std::uint64_t k, int i) {
  const auto base = static_cast<std::uint64_t>(k * 1000 + static_cast<std::uint64_t>(i));
  switch (dtype) {
    case PixelType::kUint8:
      return static_cast<float>(base % 256);
    case PixelType::kUint16:
      return static_cast<float>(base);
    case PixelType::kUint32:
      return static_cast<float>(base * 65536);
    case PixelType::kFloat32:
      break;
  }
  return static_cast<float>(base) + 0.5f;
}

DetectorFrame reference_frame(const std::string& id, std::uint32_t sub, std::uint32_t position,
                              std::uint64_t k, PixelType dtype = PixelType::kFloat32) {
  DetectorFrame f;
  f.session_id = id;
  f.sub_sequence = sub;
  f.frame_index = k;
  f.position_index = position;
  f.position_A = {1.5 * static_cast<double>(k), 100.0 - 0.25 * static_cast<double>(k)};
  f.rows = kRows;
  f.cols = kCols;
  f.electrons_per_frame = 1.0e4 + static_cast<double>(k);
  f.timestamp_ns = 1'700'000'000'000'000'000ull + 1000 * k;
  f.dtype = dtype;
  f.counts.resize(kRows * kCols);
  for (int i = 0; i < kRows * kCols; ++i) f.counts[i] = reference_count(dtype, k, i);
  return f;
}

SubSequenceRecord reference_sub_sequence(std::uint32_t s, int size) {
  SubSequenceRecord r;
  r.index = s;
  for (int j = 0; j <= size; ++j) r.proposed_A.push_back({10.0 * s + j, -0.5 * j});
  r.approved_A.assign(r.proposed_A.begin(), r.proposed_A.begin() + size);
  r.potential = ptypilot::RealImage(8, 8);
  for (int y = 0; y < 8; ++y)
    for (int x = 0; x < 8; ++x) r.potential(y, x) = 0.01f * static_cast<float>(y * 8 + x) + s;
  return r;
}

constexpr int kSubSizes[3] = {5, 7, 4};

// zlib's CRC-32, bit by bit: the journal format's checksum, computed independently of the
// recorder's (table and carry-less multiply) implementations.
std::uint32_t reference_crc32(const unsigned char* p, std::size_t n) {
  std::uint32_t crc = 0xFFFFFFFFu;
  while (n--) {
    crc ^= *p++;
    for (int k = 0; k < 8; ++k) crc = (crc & 1) ? 0xEDB88320u ^ (crc >> 1) : crc >> 1;
  }
  return ~crc;
}

std::vector<unsigned char> read_bytes(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

void write_bytes(const fs::path& path, const std::vector<unsigned char>& bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(reinterpret_cast<const char*>(bytes.data()),
            static_cast<std::streamsize>(bytes.size()));
}

// The session record's size by the documented format: header, 4 u32, f64, 3 strings with a
// u32 length each.
std::uint64_t session_record_bytes(const SessionInfo& info) {
  return 24 + 16 + 8 + 12 + info.session_id.size() + info.config_json.size() +
         info.versions_json.size();
}

struct Recorded {
  std::vector<DetectorFrame> frames;
  std::vector<SubSequenceRecord> subs;
};

// Writes the reference session: three sub-sequences of frames (the second in two calls), each
// followed by its sub-sequence record. `before_last_sub` runs after the last frames are written
// and before the last sub-sequence record (the torn-journal test snapshots the journal there).
template <typename Hook>
Recorded write_reference_session(Hdf5Recorder& rec, const std::string& id, PixelType dtype,
                                 Hook before_last_sub) {
  Recorded out;
  REQUIRE_OK(rec.begin_session(reference_info(id, dtype)));
  std::uint64_t k = 0;
  for (std::uint32_t s = 0; s < 3; ++s) {
    std::vector<DetectorFrame> frames;
    for (int p = 0; p < kSubSizes[s]; ++p)
      frames.push_back(reference_frame(id, s, static_cast<std::uint32_t>(p), k++, dtype));
    if (s == 1) {
      const std::span<const DetectorFrame> all(frames);
      REQUIRE_OK(rec.write_frames(all.first(3)));
      REQUIRE_OK(rec.write_frames(all.subspan(3)));
    } else {
      REQUIRE_OK(rec.write_frames(frames));
    }
    out.frames.insert(out.frames.end(), frames.begin(), frames.end());
    if (s == 2) before_last_sub();
    out.subs.push_back(reference_sub_sequence(s, kSubSizes[s]));
    REQUIRE_OK(rec.write_sub_sequence(out.subs.back()));
  }
  return out;
}

Recorded write_reference_session(Hdf5Recorder& rec, const std::string& id,
                                 PixelType dtype = PixelType::kFloat32) {
  return write_reference_session(rec, id, dtype, [] {});
}

// ---- Reading back with the HDF5 C API.
class H5Reader {
 public:
  explicit H5Reader(const fs::path& path)
      : file_(H5Fopen(path.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT)) {
    REQUIRE(file_ >= 0);
  }
  ~H5Reader() {
    if (file_ >= 0) H5Fclose(file_);
  }

  bool exists(const char* path) const { return H5Lexists(file_, path, H5P_DEFAULT) > 0; }

  template <typename T>
  std::vector<T> read(const char* path, hid_t mem_type, std::vector<hsize_t>& dims,
                      hid_t expected_file_type) const {
    INFO(path);
    const hid_t dset = H5Dopen2(file_, path, H5P_DEFAULT);
    REQUIRE(dset >= 0);
    const hid_t type = H5Dget_type(dset);
    CHECK(H5Tequal(type, expected_file_type) > 0);
    H5Tclose(type);
    const hid_t space = H5Dget_space(dset);
    dims.assign(static_cast<std::size_t>(H5Sget_simple_extent_ndims(space)), 0);
    H5Sget_simple_extent_dims(space, dims.data(), nullptr);
    std::vector<T> out(static_cast<std::size_t>(H5Sget_simple_extent_npoints(space)));
    if (!out.empty())
      REQUIRE(H5Dread(dset, mem_type, H5S_ALL, H5S_ALL, H5P_DEFAULT, out.data()) >= 0);
    H5Sclose(space);
    H5Dclose(dset);
    return out;
  }

  std::string string_attribute(const char* name) const {
    INFO(name);
    const hid_t attr = H5Aopen(file_, name, H5P_DEFAULT);
    REQUIRE(attr >= 0);
    const hid_t type = H5Tcopy(H5T_C_S1);
    H5Tset_size(type, H5T_VARIABLE);
    H5Tset_cset(type, H5T_CSET_UTF8);
    char* text = nullptr;
    REQUIRE(H5Aread(attr, type, &text) >= 0);
    std::string out = text ? text : "";
    H5free_memory(text);
    H5Tclose(type);
    H5Aclose(attr);
    return out;
  }

  template <typename T>
  std::vector<T> attribute(const char* name, hid_t mem_type) const {
    INFO(name);
    const hid_t attr = H5Aopen(file_, name, H5P_DEFAULT);
    REQUIRE(attr >= 0);
    const hid_t space = H5Aget_space(attr);
    std::vector<T> out(static_cast<std::size_t>(H5Sget_simple_extent_npoints(space)));
    REQUIRE(H5Aread(attr, mem_type, out.data()) >= 0);
    H5Sclose(space);
    H5Aclose(attr);
    return out;
  }

  bool has_attribute(const char* name) const { return H5Aexists(file_, name) > 0; }
  int complete() const { return attribute<std::uint8_t>("complete", H5T_NATIVE_UINT8).at(0); }

 private:
  hid_t file_;
};

hid_t file_type(PixelType dtype) {
  switch (dtype) {
    case PixelType::kUint8:
      return H5T_STD_U8LE;
    case PixelType::kUint16:
      return H5T_STD_U16LE;
    case PixelType::kUint32:
      return H5T_STD_U32LE;
    case PixelType::kFloat32:
      break;
  }
  return H5T_IEEE_F32LE;
}

// Every frame dataset has exactly `expected`, in order; /frames/counts is stored as `dtype`
// (read back through HDF5's conversion to float, exact for these counts).
void check_frames(const H5Reader& h5, const std::vector<DetectorFrame>& expected,
                  PixelType dtype = PixelType::kFloat32) {
  const hsize_t n = expected.size();
  std::vector<hsize_t> dims;
  const auto counts = h5.read<float>("/frames/counts", H5T_NATIVE_FLOAT, dims, file_type(dtype));
  REQUIRE(dims == std::vector<hsize_t>{n, kRows, kCols});
  const auto positions =
      h5.read<double>("/frames/position_A", H5T_NATIVE_DOUBLE, dims, H5T_IEEE_F64LE);
  REQUIRE(dims == std::vector<hsize_t>{n, 2});
  const auto frame_index =
      h5.read<std::uint64_t>("/frames/frame_index", H5T_NATIVE_UINT64, dims, H5T_STD_U64LE);
  REQUIRE(dims == std::vector<hsize_t>{n});
  const auto sub =
      h5.read<std::uint32_t>("/frames/sub_sequence", H5T_NATIVE_UINT32, dims, H5T_STD_U32LE);
  REQUIRE(dims == std::vector<hsize_t>{n});
  const auto position_index =
      h5.read<std::uint32_t>("/frames/position_index", H5T_NATIVE_UINT32, dims, H5T_STD_U32LE);
  REQUIRE(dims == std::vector<hsize_t>{n});
  const auto timestamp =
      h5.read<std::uint64_t>("/frames/timestamp_ns", H5T_NATIVE_UINT64, dims, H5T_STD_U64LE);
  REQUIRE(dims == std::vector<hsize_t>{n});
  const auto electrons =
      h5.read<double>("/frames/electrons_per_frame", H5T_NATIVE_DOUBLE, dims, H5T_IEEE_F64LE);
  REQUIRE(dims == std::vector<hsize_t>{n});

  std::size_t mismatched_counts = 0;
  for (std::size_t i = 0; i < expected.size(); ++i) {
    const DetectorFrame& f = expected[i];
    INFO("frame row " << i);
    CHECK(positions[2 * i] == f.position_A.y);
    CHECK(positions[2 * i + 1] == f.position_A.x);
    CHECK(frame_index[i] == f.frame_index);
    CHECK(sub[i] == f.sub_sequence);
    CHECK(position_index[i] == f.position_index);
    CHECK(timestamp[i] == f.timestamp_ns);
    CHECK(electrons[i] == f.electrons_per_frame);
    for (std::size_t p = 0; p < f.counts.size(); ++p)
      if (counts[i * kRows * kCols + p] != f.counts[p]) ++mismatched_counts;
  }
  CHECK(mismatched_counts == 0);
}

void check_sub_sequences(const H5Reader& h5, const std::vector<SubSequenceRecord>& expected) {
  for (const SubSequenceRecord& r : expected) {
    char group[32];
    std::snprintf(group, sizeof group, "/sub_sequences/%04u", r.index);
    INFO(group);
    REQUIRE(h5.exists(group));
    std::vector<hsize_t> dims;
    const std::string g(group);
    const auto proposed =
        h5.read<double>((g + "/proposed_A").c_str(), H5T_NATIVE_DOUBLE, dims, H5T_IEEE_F64LE);
    REQUIRE(dims == std::vector<hsize_t>{r.proposed_A.size(), 2});
    for (std::size_t j = 0; j < r.proposed_A.size(); ++j) {
      CHECK(proposed[2 * j] == r.proposed_A[j].y);
      CHECK(proposed[2 * j + 1] == r.proposed_A[j].x);
    }
    const auto approved =
        h5.read<double>((g + "/approved_A").c_str(), H5T_NATIVE_DOUBLE, dims, H5T_IEEE_F64LE);
    REQUIRE(dims == std::vector<hsize_t>{r.approved_A.size(), 2});
    for (std::size_t j = 0; j < r.approved_A.size(); ++j) {
      CHECK(approved[2 * j] == r.approved_A[j].y);
      CHECK(approved[2 * j + 1] == r.approved_A[j].x);
    }
    const auto potential =
        h5.read<float>((g + "/potential").c_str(), H5T_NATIVE_FLOAT, dims, H5T_IEEE_F32LE);
    REQUIRE(dims == std::vector<hsize_t>{static_cast<hsize_t>(r.potential.rows()),
                                         static_cast<hsize_t>(r.potential.cols())});
    CHECK(potential == r.potential.vector());
  }
}

void check_root_attributes(const H5Reader& h5, const SessionInfo& info) {
  CHECK(h5.string_attribute("session_id") == info.session_id);
  CHECK(h5.string_attribute("config_json") == info.config_json);
  CHECK(h5.string_attribute("versions_json") == info.versions_json);
  CHECK(h5.attribute<double>("pixel_A", H5T_NATIVE_DOUBLE) == std::vector<double>{info.pixel_A});
  CHECK(h5.attribute<std::int64_t>("frame_shape", H5T_NATIVE_INT64) ==
        std::vector<std::int64_t>{info.frame_rows, info.frame_cols});
  CHECK(h5.attribute<std::uint32_t>("layout_version", H5T_NATIVE_UINT32) ==
        std::vector<std::uint32_t>{2});
}

}  // namespace

TEST_CASE("recorder: every frame and sub-sequence reads back exactly", "[recorder]") {
  const PixelType dtype =
      GENERATE(PixelType::kFloat32, PixelType::kUint16, PixelType::kUint8, PixelType::kUint32);
  INFO("frame_dtype " << to_string(dtype));
  TempDir dir;
  RecorderConfig config{dir.path()};
  config.sync_every_frames = 4;  // exercises the periodic flush too
  Hdf5Recorder rec(config);
  const Recorded written = write_reference_session(rec, "session-a", dtype);
  REQUIRE(rec.frames_recorded() == 16);
  REQUIRE(rec.output_path() == dir.path() / "session-a.h5");
  REQUIRE(rec.journal_path() == dir.path() / "session-a.journal");
  CHECK(fs::exists(dir.path() / "session-a.reserve"));
  REQUIRE_OK(rec.end_session());
  CHECK(rec.frames_recorded() == 16);
  CHECK(rec.error().ok());
  CHECK_FALSE(fs::exists(dir.path() / "session-a.reserve"));

  H5Reader h5(rec.output_path());
  check_root_attributes(h5, reference_info("session-a"));
  CHECK(h5.complete() == 1);
  CHECK_FALSE(h5.has_attribute("error"));
  CHECK_FALSE(h5.has_attribute("recovered_from"));
  check_frames(h5, written.frames, dtype);
  check_sub_sequences(h5, written.subs);
  CHECK(fs::exists(rec.journal_path()));
  // The journal has the documented size: each frame's counts as its compressed chunk of the
  // session's dtype.
  const SessionInfo info = reference_info("session-a", dtype);
  std::uint64_t sub_records = 0, frame_records = 0;
  for (const SubSequenceRecord& r : written.subs)
    sub_records += 24 + 24 + 16 * (r.proposed_A.size() + r.approved_A.size()) +
                   4 * static_cast<std::uint64_t>(r.potential.size());
  for (const DetectorFrame& f : written.frames) frame_records += frame_record_bytes(f, dtype);
  CHECK(fs::file_size(rec.journal_path()) ==
        session_record_bytes(info) + frame_records + sub_records + 24);
}

TEST_CASE("recorder: a count the session's dtype cannot hold is refused, not sticky",
          "[recorder]") {
  TempDir dir;
  Hdf5Recorder rec(RecorderConfig{dir.path()});
  const struct {
    PixelType dtype;
    float bad;
    const char* shown;
    float largest;  // the largest count the dtype holds, accepted
  } cases[] = {
      {PixelType::kUint16, 2.5f, "2.5", 65535.0f},
      {PixelType::kUint16, -1.0f, "-1", 65535.0f},
      {PixelType::kUint16, 65536.0f, "65536", 65535.0f},
      {PixelType::kUint16, std::numeric_limits<float>::quiet_NaN(), "nan", 65535.0f},
      {PixelType::kUint16, std::numeric_limits<float>::infinity(), "inf", 65535.0f},
      {PixelType::kUint8, 256.0f, "256", 255.0f},
      {PixelType::kUint8, 0.5f, "0.5", 255.0f},
      {PixelType::kUint32, 4294967296.0f, "4294967296", 4294967040.0f},  // 2^32
      {PixelType::kUint32, 0.25f, "0.25", 4294967040.0f},
  };
  int session = 0;
  for (const auto& c : cases) {
    const std::string id = "bad-" + std::to_string(session++);
    INFO(id << ": " << to_string(c.dtype) << " session, count " << c.shown);
    REQUIRE_OK(rec.begin_session(reference_info(id, c.dtype)));
    std::vector<DetectorFrame> frames;
    for (std::uint64_t k = 0; k < 3; ++k) frames.push_back(reference_frame(id, 0, k, k, c.dtype));
    frames[0].counts[5] = c.largest;
    frames[1].counts[3 * kCols + 7] = c.bad;  // frame 1, row 3, col 7
    const std::uint64_t journal_before = fs::file_size(rec.journal_path());

    const Status refused = rec.write_frames(frames);
    CHECK(refused.code() == StatusCode::kInvalidArgument);
    CHECK_THAT(refused.message(), Catch::Contains("frame 1 ") && Catch::Contains("row 3, col 7") &&
                                      Catch::Contains(c.shown) &&
                                      Catch::Contains(to_string(c.dtype)));
    // Nothing of the call was written, and the session goes on.
    CHECK(rec.frames_recorded() == 0);
    CHECK(fs::file_size(rec.journal_path()) == journal_before);
    CHECK(rec.error().ok());
    frames[1].counts[3 * kCols + 7] = 0.0f;
    REQUIRE_OK(rec.write_frames(frames));
    REQUIRE_OK(rec.end_session());
    CHECK(rec.frames_recorded() == 3);
    H5Reader h5(rec.output_path());
    CHECK(h5.complete() == 1);
    check_frames(h5, frames, c.dtype);
  }

  // float32 holds every count as it is, fractions included.
  REQUIRE_OK(rec.begin_session(reference_info("float", PixelType::kFloat32)));
  DetectorFrame f = reference_frame("float", 0, 0, 0);
  f.counts[0] = 0.25f;
  f.counts[1] = 1.0e30f;
  REQUIRE_OK(rec.write_frames(std::span(&f, 1)));
  REQUIRE_OK(rec.end_session());
  check_frames(H5Reader(rec.output_path()), {f});

  // A dtype that is not a PixelType is refused at the start.
  SessionInfo info = reference_info("no-such-dtype");
  info.frame_dtype = static_cast<PixelType>(17);
  const Status refused = rec.begin_session(info);
  CHECK(refused.code() == StatusCode::kInvalidArgument);
  CHECK_THAT(refused.message(), Catch::Contains("frame_dtype 17"));
}

TEST_CASE("recorder: bad input is refused without failing the session", "[recorder]") {
  TempDir dir;
  Hdf5Recorder rec(RecorderConfig{dir.path()});
  const DetectorFrame good = reference_frame("s", 0, 0, 0);
  CHECK(rec.write_frames(std::span(&good, 1)).code() == StatusCode::kFailedPrecondition);
  CHECK(rec.end_session().code() == StatusCode::kFailedPrecondition);

  SessionInfo info = reference_info("../escape");
  CHECK(rec.begin_session(info).code() == StatusCode::kInvalidArgument);
  info = reference_info("s");
  info.frame_rows = 0;
  CHECK(rec.begin_session(info).code() == StatusCode::kInvalidArgument);

  REQUIRE_OK(rec.begin_session(reference_info("s")));
  CHECK(rec.begin_session(reference_info("t")).code() == StatusCode::kFailedPrecondition);

  DetectorFrame wrong_shape = reference_frame("s", 0, 0, 0);
  wrong_shape.rows = 8;
  wrong_shape.counts.resize(8 * kCols);
  const Status shape = rec.write_frames(std::span(&wrong_shape, 1));
  CHECK(shape.code() == StatusCode::kInvalidArgument);
  CHECK_THAT(shape.message(), Catch::Contains("8x16") && Catch::Contains("16x16"));
  const DetectorFrame other_session = reference_frame("other", 0, 0, 0);
  CHECK(rec.write_frames(std::span(&other_session, 1)).code() == StatusCode::kInvalidArgument);
  CHECK(rec.frames_recorded() == 0);

  REQUIRE_OK(rec.write_frames(std::span(&good, 1)));  // the refusals did not stick
  REQUIRE_OK(rec.write_sub_sequence(reference_sub_sequence(0, 1)));
  CHECK(rec.write_sub_sequence(reference_sub_sequence(0, 1)).code() ==
        StatusCode::kInvalidArgument);
  REQUIRE_OK(rec.end_session());
  CHECK(rec.frames_recorded() == 1);

  // A recorded session is never overwritten.
  const Status again = rec.begin_session(reference_info("s"));
  CHECK(again.code() == StatusCode::kFailedPrecondition);
  CHECK_THAT(again.message(), Catch::Contains("already exists"));
  // The recorder takes the next session.
  REQUIRE_OK(rec.begin_session(reference_info("t")));
  CHECK(rec.frames_recorded() == 0);
  REQUIRE_OK(rec.end_session());
}

TEST_CASE("recorder: a directory that cannot be created is a startup error", "[recorder]") {
  TempDir dir;
  const fs::path file = dir.path() / "a-file";
  std::ofstream(file) << "x";
  CHECK_THROWS_WITH(Hdf5Recorder(RecorderConfig{file / "sub"}),
                    Catch::Contains((file / "sub").string()));
  CHECK_THROWS_AS(Hdf5Recorder(RecorderConfig{}), std::runtime_error);
}

TEST_CASE("recorder: a full disk fails the write and keeps what was recorded", "[recorder]") {
  TempDir dir;
  const SessionInfo info = reference_info("full");
  const std::uint64_t session_record = session_record_bytes(info);
  RecorderConfig config{dir.path()};
  std::vector<DetectorFrame> first, second;
  for (std::uint64_t k = 0; k < 4; ++k) first.push_back(reference_frame("full", 0, k, k));
  for (std::uint64_t k = 4; k < 7; ++k) second.push_back(reference_frame("full", 0, k, k));
  // Room for the session record, the first 4 frames and one more: the second call's 3 frames
  // get a partial write and then ENOSPC, like a real disk filling up mid-write.
  std::uint64_t after_first = session_record;
  for (const DetectorFrame& f : first) after_first += frame_record_bytes(f, PixelType::kFloat32);
  config.max_journal_bytes =
      after_first + frame_record_bytes(second[0], PixelType::kFloat32) + 60;
  Hdf5Recorder rec(config);
  REQUIRE_OK(rec.begin_session(info));
  const fs::path reserve = dir.path() / "full.reserve";
  REQUIRE(fs::exists(reserve));
  CHECK(fs::file_size(reserve) == config.reserve_bytes);

  REQUIRE_OK(rec.write_frames(first));
  CHECK(fs::file_size(rec.journal_path()) == after_first);  // the documented record sizes

  const Status full = rec.write_frames(second);
  CHECK(full.code() == StatusCode::kUnavailable);
  CHECK_THAT(full.message(), Catch::Contains("no space", Catch::CaseSensitive::No) &&
                                 Catch::Contains(rec.journal_path().string()));
  CHECK(rec.frames_recorded() == 4);
  CHECK_FALSE(fs::exists(reserve));  // given back, so that the file can be closed
  // The torn write was cut back: the journal ends on a whole record.
  CHECK(fs::file_size(rec.journal_path()) == after_first);

  // Sticky: later writes fail fast with the same message, even ones that would fit.
  const DetectorFrame small = reference_frame("full", 0, 7, 7);
  const Status later = rec.write_frames(std::span(&small, 1));
  CHECK(later.code() == full.code());
  CHECK(later.message() == full.message());
  CHECK(rec.write_sub_sequence(reference_sub_sequence(0, 4)).message() == full.message());
  CHECK(rec.frames_recorded() == 4);
  CHECK(rec.error().message() == full.message());

  REQUIRE_OK(rec.end_session());
  H5Reader h5(rec.output_path());
  CHECK(h5.complete() == 0);
  CHECK_THAT(h5.string_attribute("error"), Catch::Contains("No space left on device"));
  check_root_attributes(h5, info);
  check_frames(h5, first);

  // The journal, cut back after the failure, recovers the same 4 frames.
  RecoveryReport report;
  REQUIRE_OK(Hdf5Recorder::recover(rec.journal_path(), dir.path() / "recovered.h5", &report));
  CHECK(report.frames == 4);
  CHECK_FALSE(report.ended);
  CHECK(report.ignored_bytes == 0);
}

TEST_CASE("recorder: a nearly full disk refuses the session before it starts", "[recorder]") {
  TempDir dir;
  RecorderConfig config{dir.path()};
  config.min_free_bytes = 1ull << 62;
  Hdf5Recorder rec(config);
  const Status status = rec.begin_session(reference_info("crowded"));
  CHECK(status.code() == StatusCode::kUnavailable);
  CHECK_THAT(status.message(), Catch::Contains("no space left") &&
                                   Catch::Contains("min_free_bytes"));
  // Nothing is left behind, and nothing is open.
  CHECK(fs::is_empty(dir.path()));
  CHECK(rec.end_session().code() == StatusCode::kFailedPrecondition);
}

TEST_CASE("recorder: recover rebuilds the file from a journal torn mid-record", "[recorder]") {
  const PixelType dtype = GENERATE(PixelType::kFloat32, PixelType::kUint16);
  INFO("frame_dtype " << to_string(dtype));
  TempDir dir;
  Hdf5Recorder rec(RecorderConfig{dir.path()});
  const fs::path crash_copy = dir.path() / "crash.journal";
  // What a crash leaves: the journal as it was after the last frames were acknowledged...
  const Recorded written = write_reference_session(rec, "torn", dtype, [&] {
    fs::copy_file(rec.journal_path(), crash_copy);
  });
  REQUIRE_OK(rec.end_session());
  // ...with the last frame's record half written.
  const std::uint64_t record = frame_record_bytes(written.frames.back(), dtype);
  const std::uint64_t whole = fs::file_size(crash_copy);
  fs::resize_file(crash_copy, whole - record / 2);

  SECTION("torn tail: every whole record is recovered") {
    const fs::path out = dir.path() / "torn-recovered.h5";
    RecoveryReport report;
    const Status status = Hdf5Recorder::recover(crash_copy, out, &report);
    REQUIRE_OK(status);
    CHECK_THAT(status.message(), Catch::Contains("recovered 15 frames") &&
                                     Catch::Contains("torn record"));
    CHECK(report.frames == written.frames.size() - 1);
    CHECK(report.sub_sequences == 2);
    CHECK_FALSE(report.ended);
    CHECK(report.ignored_bytes == record - record / 2);

    H5Reader h5(out);
    CHECK(h5.complete() == 0);
    CHECK(h5.has_attribute("error"));
    CHECK_THAT(h5.string_attribute("recovered_from"), Catch::Contains("crash.journal"));
    check_root_attributes(h5, reference_info("torn"));
    check_frames(h5, std::vector<DetectorFrame>(written.frames.begin(), written.frames.end() - 1),
                 dtype);
    check_sub_sequences(h5, {written.subs[0], written.subs[1]});
    CHECK_FALSE(h5.exists("/sub_sequences/0002"));
  }

  SECTION("an intact journal recovers the whole session, complete") {
    const fs::path out = dir.path() / "whole-recovered.h5";
    RecoveryReport report;
    REQUIRE_OK(Hdf5Recorder::recover(rec.journal_path(), out, &report));
    CHECK(report.frames == 16);
    CHECK(report.sub_sequences == 3);
    CHECK(report.ended);
    CHECK(report.ignored_bytes == 0);
    H5Reader h5(out);
    CHECK(h5.complete() == 1);
    CHECK_FALSE(h5.has_attribute("error"));
    check_frames(h5, written.frames, dtype);
    check_sub_sequences(h5, written.subs);
  }

  SECTION("a corrupt byte ends the journal at the record that holds it") {
    const fs::path bad = dir.path() / "bad.journal";
    fs::copy_file(rec.journal_path(), bad);
    const std::uint64_t session_record = session_record_bytes(reference_info("torn"));
    {
      // Flip a byte of the compressed counts in the payload of the third frame record.
      std::fstream f(bad, std::ios::in | std::ios::out | std::ios::binary);
      f.seekp(static_cast<std::streamoff>(session_record +
                                          frame_record_bytes(written.frames[0], dtype) +
                                          frame_record_bytes(written.frames[1], dtype) + 90));
      f.put('\x7f');
    }
    RecoveryReport report;
    const Status status = Hdf5Recorder::recover(bad, dir.path() / "bad.h5", &report);
    REQUIRE_OK(status);
    CHECK_THAT(status.message(), Catch::Contains("CRC"));
    CHECK(report.frames == 2);
    CHECK_FALSE(report.ended);
  }

  SECTION("recover refuses to overwrite, and to read what is not a journal") {
    CHECK(Hdf5Recorder::recover(crash_copy, rec.output_path()).code() ==
          StatusCode::kFailedPrecondition);
    CHECK(Hdf5Recorder::recover(rec.output_path(), dir.path() / "x.h5").code() ==
          StatusCode::kInvalidArgument);
    CHECK(Hdf5Recorder::recover(dir.path() / "missing.journal", dir.path() / "y.h5").code() ==
          StatusCode::kInvalidArgument);
    CHECK_FALSE(fs::exists(dir.path() / "x.h5"));
  }

  SECTION("a journal of another version is refused, naming both versions") {
    // The same journal with version 1 in its session record, CRCs fixed: whole, but older than
    // any this build reads.
    std::vector<unsigned char> bytes = read_bytes(rec.journal_path());
    const std::uint64_t session_record = session_record_bytes(reference_info("torn"));
    const std::uint32_t v1 = 1;
    std::memcpy(bytes.data() + 24, &v1, 4);
    const std::uint32_t payload_crc = reference_crc32(bytes.data() + 24, session_record - 24);
    std::memcpy(bytes.data() + 16, &payload_crc, 4);
    const std::uint32_t header_crc = reference_crc32(bytes.data(), 20);
    std::memcpy(bytes.data() + 20, &header_crc, 4);
    const fs::path old = dir.path() / "v1.journal";
    write_bytes(old, bytes);
    const Status status = Hdf5Recorder::recover(old, dir.path() / "v1.h5");
    CHECK(status.code() == StatusCode::kInvalidArgument);
    CHECK_THAT(status.message(),
               Catch::Contains("version 1") && Catch::Contains("versions 2 to 3"));
    CHECK_FALSE(fs::exists(dir.path() / "v1.h5"));
  }

  SECTION("the session record says the dtype; the frame records hold counts in it") {
    const std::vector<unsigned char> bytes = read_bytes(rec.journal_path());
    std::uint32_t version = 0, rows = 0, cols = 0, code = 0;
    std::memcpy(&version, bytes.data() + 24, 4);
    std::memcpy(&rows, bytes.data() + 28, 4);
    std::memcpy(&cols, bytes.data() + 32, 4);
    std::memcpy(&code, bytes.data() + 36, 4);
    CHECK(version == 3);
    CHECK(rows == kRows);
    CHECK(cols == kCols);
    CHECK(code == (dtype == PixelType::kUint16 ? 2u : 4u));  // FrameHeader.DType numbers
    // The first frame record: its payload is the fields and the frame's bitshuffle-LZ4 chunk,
    // which decodes to its counts in the session's dtype.
    const std::size_t at = session_record_bytes(reference_info("torn"));
    std::uint64_t payload = 0;
    std::memcpy(&payload, bytes.data() + at + 8, 8);
    const std::vector<std::byte> chunk = chunk_of(written.frames[0], dtype);
    REQUIRE(payload == 56 + chunk.size());
    const std::span<const std::byte> stored(
        reinterpret_cast<const std::byte*>(bytes.data() + at + 24 + 56), chunk.size());
    std::vector<std::byte> decoded(kRows * kCols * ptypilot::pixel_size(dtype));
    REQUIRE(ptypilot::compression::decode_bitshuffle_lz4(stored, ptypilot::pixel_size(dtype),
                                                         decoded)
                .ok());
    CHECK(decoded == counts_as(written.frames[0], dtype));
  }
}

TEST_CASE("recorder: a recorder destroyed mid-session leaves a readable file", "[recorder]") {
  TempDir dir;
  fs::path h5_path;
  std::vector<DetectorFrame> frames;
  {
    Hdf5Recorder rec(RecorderConfig{dir.path()});
    REQUIRE_OK(rec.begin_session(reference_info("dropped")));
    for (std::uint64_t k = 0; k < 3; ++k) frames.push_back(reference_frame("dropped", 0, k, k));
    REQUIRE_OK(rec.write_frames(frames));
    h5_path = rec.output_path();
  }
  H5Reader h5(h5_path);
  CHECK(h5.complete() == 0);
  CHECK_THAT(h5.string_attribute("error"), Catch::Contains("without end_session"));
  check_frames(h5, frames);
}

TEST_CASE("recorder: a session that ends in error says so in the file and the journal",
          "[recorder]") {
  TempDir dir;
  Hdf5Recorder rec(RecorderConfig{dir.path()});
  REQUIRE_OK(rec.begin_session(reference_info("timed-out")));
  std::vector<DetectorFrame> frames;
  for (std::uint64_t k = 0; k < 3; ++k) frames.push_back(reference_frame("timed-out", 0, k, k));
  REQUIRE_OK(rec.write_frames(frames));
  REQUIRE_OK(rec.end_session("detector stopped sending: no frame for 1.2 s"));
  {
    H5Reader h5(rec.output_path());
    CHECK(h5.complete() == 0);
    CHECK(h5.string_attribute("error") == "detector stopped sending: no frame for 1.2 s");
    check_frames(h5, frames);
  }
  // The end record carries the error: a rebuilt file says the same.
  RecoveryReport report;
  REQUIRE_OK(Hdf5Recorder::recover(rec.journal_path(), dir.path() / "again.h5", &report));
  CHECK(report.ended);
  CHECK_FALSE(report.complete);
  CHECK(report.error == "detector stopped sending: no frame for 1.2 s");
  H5Reader again(dir.path() / "again.h5");
  CHECK(again.complete() == 0);
  CHECK(again.string_attribute("error") == "detector stopped sending: no frame for 1.2 s");
}

TEST_CASE("recorder: a live file says it is interrupted until it ends; recover_session replaces "
          "it", "[recorder]") {
  TempDir dir;
  const std::string id = "crashed";
  std::vector<DetectorFrame> frames;
  for (std::uint64_t k = 0; k < 5; ++k) frames.push_back(reference_frame(id, 0, k, k));
  // What a killed daemon leaves: the session's files as they are mid-session. A copy of each is
  // the state at the moment of the kill (the original is finished when the recorder goes).
  {
    Hdf5Recorder rec(RecorderConfig{dir.path()});
    REQUIRE_OK(rec.begin_session(reference_info(id)));
    REQUIRE_OK(rec.write_frames(frames));
    REQUIRE_OK(rec.write_sub_sequence(reference_sub_sequence(0, 5)));
    // The lock of a live session: neither recovery nor the scan touches it.
    SessionRecovery refused;
    const Status busy = Hdf5Recorder::recover_session(rec.journal_path(), &refused);
    CHECK(busy.code() == StatusCode::kFailedPrecondition);
    CHECK_THAT(busy.message(), Catch::Contains("still recording"));
    const DirectoryScan live = Hdf5Recorder::scan_directory(dir.path());
    CHECK(live.orphaned_journals.empty());
    CHECK(live.reserves_removed.empty());
    fs::copy_file(rec.journal_path(), dir.path() / "copy.journal");
    fs::copy_file(rec.output_path(), dir.path() / "copy.h5");
    fs::copy_file(dir.path() / (id + ".reserve"), dir.path() / "copy.reserve");
    REQUIRE_OK(rec.end_session());
  }
  {
    H5Reader h5(dir.path() / "copy.h5");  // flushed after the sub-sequence, so readable
    CHECK(h5.complete() == 0);
    CHECK_THAT(h5.string_attribute("error"),
               Catch::StartsWith("interrupted:") && Catch::Contains("ptypilot recover"));
  }
  {
    H5Reader h5(dir.path() / (id + ".h5"));  // ended well: the mark is gone
    CHECK(h5.complete() == 1);
    CHECK_FALSE(h5.has_attribute("error"));
  }

  const DirectoryScan scan = Hdf5Recorder::scan_directory(dir.path());
  CHECK(scan.orphaned_journals == std::vector<fs::path>{dir.path() / "copy.journal"});
  CHECK(scan.reserves_removed == std::vector<fs::path>{dir.path() / "copy.reserve"});
  fs::copy_file(dir.path() / (id + ".journal"), dir.path() / "spare.journal");  // not orphaned:
  std::ofstream(dir.path() / "copy.reserve") << "left by the crash";  // its .h5 is missing
  SessionRecovery r;
  REQUIRE_OK(Hdf5Recorder::recover_session(dir.path() / "copy.h5", &r));
  CHECK(r.journal == dir.path() / "copy.journal");
  CHECK(r.report.frames == 5);
  CHECK(r.report.sub_sequences == 1);
  CHECK_FALSE(r.report.ended);
  CHECK(r.replaced);
  CHECK(r.reserve_removed);
  CHECK_FALSE(fs::exists(dir.path() / "copy.reserve"));
  H5Reader recovered(dir.path() / "copy.h5");
  CHECK(recovered.complete() == 0);
  CHECK_THAT(recovered.string_attribute("error"), Catch::Contains("did not end"));
  check_frames(recovered, frames);
  // Recovered, it is no orphan any more; the spare journal without a file is one.
  CHECK(Hdf5Recorder::scan_directory(dir.path()).orphaned_journals ==
        std::vector<fs::path>{dir.path() / "spare.journal"});
}

// tests/python/test_recorder_h5py.py runs this with PTYPILOT_RECORDER_H5 set and reads the files
// with h5py: the reference session recorded as float32 goes to $PTYPILOT_RECORDER_H5, and as
// uint16 to the same name with "-uint16" before the extension; each journal goes beside its .h5
// (same name, .journal). Without the variable it is just two more round trips.
namespace {

// Appends one journal record with the documented header and CRCs.
void append_record(std::vector<unsigned char>& out, std::uint32_t type,
                   const unsigned char* payload, std::uint64_t bytes) {
  unsigned char header[24];
  const std::uint32_t magic = 0x4A595450;
  const std::uint32_t payload_crc = reference_crc32(payload, bytes);
  std::memcpy(header, &magic, 4);
  std::memcpy(header + 4, &type, 4);
  std::memcpy(header + 8, &bytes, 8);
  std::memcpy(header + 16, &payload_crc, 4);
  const std::uint32_t header_crc = reference_crc32(header, 20);
  std::memcpy(header + 20, &header_crc, 4);
  out.insert(out.end(), header, header + 24);
  out.insert(out.end(), payload, payload + bytes);
}

// The journal as a build before compressed journals wrote it (version 2): the session record
// says version 2, and each frame record holds the raw counts in the session's dtype.
std::vector<unsigned char> as_version_2(const std::vector<unsigned char>& journal,
                                        PixelType dtype) {
  std::vector<unsigned char> out;
  for (std::size_t at = 0; at < journal.size();) {
    std::uint32_t type = 0;
    std::uint64_t bytes = 0;
    std::memcpy(&type, journal.data() + at + 4, 4);
    std::memcpy(&bytes, journal.data() + at + 8, 8);
    std::vector<unsigned char> payload(journal.begin() + static_cast<std::ptrdiff_t>(at + 24),
                                       journal.begin() + static_cast<std::ptrdiff_t>(at + 24 + bytes));
    if (type == 1) {
      const std::uint32_t v2 = 2;
      std::memcpy(payload.data(), &v2, 4);
    } else if (type == 2) {
      std::vector<std::byte> raw(kRows * kCols * ptypilot::pixel_size(dtype));
      const std::span<const std::byte> chunk(reinterpret_cast<const std::byte*>(payload.data() + 56),
                                             payload.size() - 56);
      REQUIRE(ptypilot::compression::decode_bitshuffle_lz4(chunk, ptypilot::pixel_size(dtype), raw)
                  .ok());
      payload.resize(56);
      const auto* r = reinterpret_cast<const unsigned char*>(raw.data());
      payload.insert(payload.end(), r, r + raw.size());
    }
    append_record(out, type, payload.data(), payload.size());
    at += 24 + bytes;
  }
  return out;
}

// The filter of /frames/counts and its cd_values, and chunk `k` as stored in the file.
struct StoredChunk {
  H5Z_filter_t filter = -1;
  std::vector<unsigned> cd_values;
  std::uint32_t filter_mask = 0;
  std::vector<std::byte> bytes;
};

StoredChunk stored_chunk(const fs::path& path, hsize_t k) {
  StoredChunk out;
  const hid_t file = H5Fopen(path.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT);
  REQUIRE(file >= 0);
  const hid_t dset = H5Dopen2(file, "/frames/counts", H5P_DEFAULT);
  REQUIRE(dset >= 0);
  const hid_t dcpl = H5Dget_create_plist(dset);
  REQUIRE(H5Pget_nfilters(dcpl) == 1);
  unsigned flags = 0, cd[8] = {};
  std::size_t cd_count = 8;
  out.filter = H5Pget_filter2(dcpl, 0, &flags, &cd_count, cd, 0, nullptr, nullptr);
  out.cd_values.assign(cd, cd + cd_count);
  const hsize_t offset[3] = {k, 0, 0};
  hsize_t bytes = 0;
  REQUIRE(H5Dget_chunk_storage_size(dset, offset, &bytes) >= 0);
  out.bytes.resize(bytes);
  REQUIRE(H5Dread_chunk(dset, H5P_DEFAULT, offset, &out.filter_mask, out.bytes.data()) >= 0);
  H5Pclose(dcpl);
  H5Dclose(dset);
  H5Fclose(file);
  return out;
}

}  // namespace

TEST_CASE("recorder: a version-2 journal (uncompressed counts) still recovers", "[recorder]") {
  const PixelType dtype = GENERATE(PixelType::kFloat32, PixelType::kUint16);
  INFO("frame_dtype " << to_string(dtype));
  TempDir dir;
  Hdf5Recorder rec(RecorderConfig{dir.path()});
  const Recorded written = write_reference_session(rec, "old", dtype);
  REQUIRE_OK(rec.end_session());
  const fs::path old = dir.path() / "old-v2.journal";
  write_bytes(old, as_version_2(read_bytes(rec.journal_path()), dtype));

  RecoveryReport report;
  REQUIRE_OK(Hdf5Recorder::recover(old, dir.path() / "old-v2.h5", &report));
  CHECK(report.frames == 16);
  CHECK(report.ended);
  CHECK(report.ignored_bytes == 0);
  H5Reader h5(dir.path() / "old-v2.h5");
  CHECK(h5.complete() == 1);
  check_frames(h5, written.frames, dtype);
  check_sub_sequences(h5, written.subs);
  // Recovered into today's layout: the same chunks the live recorder wrote.
  for (hsize_t k = 0; k < 16; ++k)
    CHECK(stored_chunk(dir.path() / "old-v2.h5", k).bytes ==
          stored_chunk(rec.output_path(), k).bytes);
}

TEST_CASE("recorder: /frames/counts is one bitshuffle-LZ4 chunk per frame, as in the journal",
          "[recorder]") {
  const PixelType dtype = GENERATE(PixelType::kUint16, PixelType::kFloat32, PixelType::kUint8);
  INFO("frame_dtype " << to_string(dtype));
  TempDir dir;
  Hdf5Recorder rec(RecorderConfig{dir.path()});
  const Recorded written = write_reference_session(rec, "chunks", dtype);
  REQUIRE_OK(rec.end_session());
  const std::vector<unsigned char> journal = read_bytes(rec.journal_path());
  std::size_t at = session_record_bytes(reference_info("chunks"));
  for (std::size_t k = 0; k < written.frames.size(); ++k) {
    INFO("frame " << k);
    const StoredChunk chunk = stored_chunk(rec.output_path(), k);
    CHECK(chunk.filter == ptypilot::hdf5::kBitshuffleFilterId);
    // [major, minor, element size, block size (0: the filter's default), 2: LZ4]; the
    // version is that of whichever filter wrote it (the plugin's, or 0.0 for ptypilot's).
    REQUIRE(chunk.cd_values.size() == 5);
    CHECK(std::vector<unsigned>(chunk.cd_values.begin() + 2, chunk.cd_values.end()) ==
          std::vector<unsigned>{static_cast<unsigned>(ptypilot::pixel_size(dtype)), 0, 2});
    CHECK(chunk.filter_mask == 0);  // the filter was applied
    CHECK(chunk.bytes == chunk_of(written.frames[k], dtype));
    // The journal's frame record holds the same bytes. (Records of sub-sequences lie between
    // the frames: frame records are found by their type.)
    std::uint32_t type = 0;
    std::uint64_t payload = 0;
    for (;;) {
      std::memcpy(&type, journal.data() + at + 4, 4);
      std::memcpy(&payload, journal.data() + at + 8, 8);
      if (type == 2) break;
      at += 24 + payload;
    }
    REQUIRE(payload == 56 + chunk.bytes.size());
    CHECK(std::memcmp(journal.data() + at + 80, chunk.bytes.data(), chunk.bytes.size()) == 0);
    at += 24 + payload;
  }
}

TEST_CASE("recorder: a frame's own bitshuffle-LZ4 chunk is stored untouched", "[recorder]") {
  TempDir dir;
  Hdf5Recorder rec(RecorderConfig{dir.path()});
  REQUIRE_OK(rec.begin_session(reference_info("passthrough", PixelType::kUint16)));
  std::vector<DetectorFrame> frames;
  for (std::uint64_t k = 0; k < 4; ++k) {
    DetectorFrame f = reference_frame("passthrough", 0, k, k, PixelType::kUint16);
    // A block of 64 bytes, not the recorder's 8192: the stored chunk shows whose it is.
    if (k != 2)
      REQUIRE(ptypilot::compression::encode_bitshuffle_lz4(counts_as(f, PixelType::kUint16), 2,
                                                           &f.bitshuffle_lz4, 64)
                  .ok());
    frames.push_back(std::move(f));
  }
  REQUIRE_OK(rec.write_frames(frames));
  REQUIRE_OK(rec.end_session());
  for (std::size_t k = 0; k < frames.size(); ++k) {
    INFO("frame " << k);
    const StoredChunk chunk = stored_chunk(rec.output_path(), k);
    if (k != 2) CHECK(chunk.bytes == frames[k].bitshuffle_lz4);
    else CHECK(chunk.bytes == chunk_of(frames[k], PixelType::kUint16));
  }
  check_frames(H5Reader(rec.output_path()), frames, PixelType::kUint16);

  // A chunk of another dtype than the session's is not the file's: the counts are compressed.
  REQUIRE_OK(rec.begin_session(reference_info("other-dtype", PixelType::kFloat32)));
  DetectorFrame uint16_chunk = frames[0];
  uint16_chunk.session_id = "other-dtype";
  REQUIRE_OK(rec.write_frames(std::span(&uint16_chunk, 1)));
  REQUIRE_OK(rec.end_session());
  CHECK(stored_chunk(rec.output_path(), 0).bytes ==
        chunk_of(uint16_chunk, PixelType::kFloat32));
  check_frames(H5Reader(rec.output_path()), {uint16_chunk});
}

TEST_CASE("recorder: ptypilot's own bitshuffle filter reads and writes what the plugin does",
          "[recorder]") {
  // Replaces an installed plugin for the rest of this process: what a machine without one runs.
  REQUIRE(ptypilot::hdf5::register_own_bitshuffle_filter());
  TempDir dir;
  Hdf5Recorder rec(RecorderConfig{dir.path()});
  const Recorded written = write_reference_session(rec, "own-filter", PixelType::kUint16);
  REQUIRE_OK(rec.end_session());
  H5Reader h5(rec.output_path());
  check_frames(h5, written.frames, PixelType::kUint16);  // H5Dread through the filter

  // And HDF5 compresses through it too, to the chunks the recorder writes directly.
  const fs::path path = dir.path() / "through-the-filter.h5";
  const hid_t file = H5Fcreate(path.c_str(), H5F_ACC_EXCL, H5P_DEFAULT, H5P_DEFAULT);
  const hsize_t dims[3] = {1, kRows, kCols};
  const hid_t space = H5Screate_simple(3, dims, nullptr);
  const hid_t dcpl = H5Pcreate(H5P_DATASET_CREATE);
  const unsigned block_and_lz4[2] = {0, 2};
  REQUIRE(H5Pset_chunk(dcpl, 3, dims) >= 0);
  REQUIRE(H5Pset_filter(dcpl, 32008, H5Z_FLAG_MANDATORY, 2, block_and_lz4) >= 0);
  const hid_t dset =
      H5Dcreate2(file, "counts", H5T_STD_U16LE, space, H5P_DEFAULT, dcpl, H5P_DEFAULT);
  REQUIRE(dset >= 0);
  const std::vector<std::byte> raw = counts_as(written.frames[3], PixelType::kUint16);
  REQUIRE(H5Dwrite(dset, H5T_STD_U16LE, H5S_ALL, H5S_ALL, H5P_DEFAULT, raw.data()) >= 0);
  H5Dclose(dset);
  H5Pclose(dcpl);
  H5Sclose(space);
  H5Fclose(file);
  // Rename the dataset's path for stored_chunk: it reads /frames/counts.
  const hid_t reopened = H5Fopen(path.c_str(), H5F_ACC_RDWR, H5P_DEFAULT);
  REQUIRE(H5Gclose(H5Gcreate2(reopened, "frames", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT)) >= 0);
  REQUIRE(H5Lmove(reopened, "counts", reopened, "frames/counts", H5P_DEFAULT, H5P_DEFAULT) >= 0);
  H5Fclose(reopened);
  const StoredChunk through_filter = stored_chunk(path, 0);
  CHECK(through_filter.cd_values == std::vector<unsigned>{0, 0, 2, 0, 2});
  CHECK(through_filter.bytes == stored_chunk(rec.output_path(), 3).bytes);
}

TEST_CASE("recorder: writes the reference session for the h5py test", "[recorder][h5py]") {
  const char* target = std::getenv("PTYPILOT_RECORDER_H5");
  for (const PixelType dtype : {PixelType::kFloat32, PixelType::kUint16}) {
    TempDir dir;
    Hdf5Recorder rec(RecorderConfig{dir.path()});
    write_reference_session(rec, "h5py-fixture", dtype);
    REQUIRE_OK(rec.end_session());
    REQUIRE(rec.frames_recorded() == 16);
    if (target && *target) {
      fs::path h5_target(target);
      if (dtype == PixelType::kUint16)
        h5_target.replace_filename(h5_target.stem().string() + "-uint16" +
                                   h5_target.extension().string());
      fs::path journal_target = h5_target;
      journal_target.replace_extension(".journal");
      fs::copy_file(rec.output_path(), h5_target, fs::copy_options::overwrite_existing);
      fs::copy_file(rec.journal_path(), journal_target, fs::copy_options::overwrite_existing);
    }
  }
}


// Not a correctness test: hidden ([.bench]), run by hand with
//   build/bin/ptypilot_tests "[recorder-bench]"
// Records 20000 64x64 frames of uint16-valued counts in write_frames() batches of 256 (the
// daemon's default sync_every_frames), as uint16 and as float32, and prints frames/s: during the
// writes (what bounds ingest) and including end_session (which fsyncs the .h5). The files go to
// $PTYPILOT_BENCH_DIR (default: the temp directory) and are deleted.
TEST_CASE("recorder: throughput, uint16 vs float32 storage", "[.bench][recorder-bench]") {
  constexpr int kBenchRows = 64, kBenchCols = 64, kBatch = 256, kTotal = 20000, kRepeats = 2;
  const char* bench_dir = std::getenv("PTYPILOT_BENCH_DIR");
  const fs::path base = bench_dir && *bench_dir ? fs::path(bench_dir) : fs::temp_directory_path();
  const fs::path dir = base / ("ptypilot-recorder-bench-" + std::to_string(::getpid()));
  std::vector<DetectorFrame> batch(kBatch);
  for (int i = 0; i < kBatch; ++i) {
    DetectorFrame& f = batch[i];
    f.session_id = "bench";
    f.rows = kBenchRows;
    f.cols = kBenchCols;
    f.dtype = PixelType::kUint16;
    f.counts.resize(kBenchRows * kBenchCols);
    for (int p = 0; p < kBenchRows * kBenchCols; ++p)
      f.counts[p] = static_cast<float>((p * 7919 + i * 104729) % 65536);
  }
  const struct {
    const char* name;
    PixelType dtype;
  } cases[] = {{"uint16", PixelType::kUint16}, {"float32", PixelType::kFloat32}};
  for (int repeat = 0; repeat < kRepeats; ++repeat) {
    for (const auto& c : cases) {
      fs::remove_all(dir);
      Hdf5Recorder rec(RecorderConfig{dir});
      SessionInfo info = reference_info("bench");
      info.frame_rows = kBenchRows;
      info.frame_cols = kBenchCols;
      info.frame_dtype = c.dtype;
      REQUIRE_OK(rec.begin_session(info));
      const auto start = std::chrono::steady_clock::now();
      for (int k = 0; k < kTotal;) {
        const int n = std::min(kBatch, kTotal - k);
        for (int i = 0; i < n; ++i) batch[i].frame_index = static_cast<std::uint64_t>(k + i);
        REQUIRE_OK(rec.write_frames(std::span<const DetectorFrame>(batch).first(n)));
        k += n;
      }
      const auto written = std::chrono::steady_clock::now();
      REQUIRE_OK(rec.end_session());
      const auto ended = std::chrono::steady_clock::now();
      REQUIRE(rec.frames_recorded() == kTotal);
      const auto seconds = [](auto d) { return std::chrono::duration<double>(d).count(); };
      std::printf(
          "recorder bench %-7s  %6.0f frames/s writing, %6.0f frames/s incl. end_session "
          "(journal %.1f MB, h5 %.1f MB)\n",
          c.name, kTotal / seconds(written - start), kTotal / seconds(ended - start),
          static_cast<double>(fs::file_size(rec.journal_path())) / 1e6,
          static_cast<double>(fs::file_size(rec.output_path())) / 1e6);
      std::fflush(stdout);
    }
  }
  fs::remove_all(dir);
}
