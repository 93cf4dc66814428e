#include "hdf5_session_writer.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <bit>
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <string_view>

#include "ptypilot/wire/log.hpp"
#include "recorder_disk.hpp"

namespace ptypilot::recorder {
namespace fs = std::filesystem;
using hdf5::H5Id;

// Frames go in as the bytes the journal holds: H5Dwrite_chunk, no conversion.
static_assert(std::endian::native == std::endian::little, "the counts' bytes are little-endian");

// layout_version 2: /frames/counts is stored bitshuffle + LZ4 (filter 32008); 1 was uncompressed.

namespace {

constexpr std::uint32_t kLayoutVersion = 2;
constexpr hsize_t kRowChunk = 1024;  // chunk length of the 1-D and (N, 2) frame datasets

// Little-endian in the file; the process is little-endian too (the static_assert above), so the
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

// The pipeline of /frames/counts: bitshuffle with LZ4 and the filter's default block size,
// given as the filter's creators give it, (block size 0, LZ4); its set_local (the plugin's, or
// ptypilot's that does the same) stores [major, minor, element size, 0, 2].
//
// Why the filter must be registered at all: the chunks are compressed here and written with
// H5Dwrite_chunk, which never calls a filter, but H5Dcreate refuses a mandatory filter that
// HDF5 cannot find. Marking it H5Z_FLAG_OPTIONAL would let creation pass without it, but then
// the file says HDF5 may skip the filter on a write, and no set_local fills in the element size
// that readers need. A mandatory filter that this process can really run
// (hdf5::ensure_bitshuffle_filter: the plugin if installed, else ptypilot's codec) keeps the
// file's description right and lets H5Dread in this process read it back.
bool add_bitshuffle_lz4(hid_t dcpl) {
  const unsigned block_and_compressor[2] = {0, hdf5::kBitshuffleLz4Compressor};
  return hdf5::ensure_bitshuffle_filter() &&
         H5Pset_filter(dcpl, hdf5::kBitshuffleFilterId, H5Z_FLAG_MANDATORY, 2,
                       block_and_compressor) >= 0;
}

H5Id extendible(hid_t parent, const char* name, hid_t file_type, std::vector<hsize_t> tail,
                hsize_t chunk_rows, hid_t dapl = H5P_DEFAULT, bool bitshuffle_lz4 = false) {
  std::vector<hsize_t> dims{0}, maxdims{H5S_UNLIMITED}, chunk{chunk_rows};
  for (hsize_t t : tail) {
    dims.push_back(t);
    maxdims.push_back(t);
    chunk.push_back(t);
  }
  const int rank = static_cast<int>(dims.size());
  H5Id space(H5Screate_simple(rank, dims.data(), maxdims.data()), H5Sclose);
  H5Id dcpl(H5Pcreate(H5P_DATASET_CREATE), H5Pclose);
  if (!space.valid() || !dcpl.valid() || H5Pset_chunk(dcpl.get(), rank, chunk.data()) < 0 ||
      (bitshuffle_lz4 && !add_bitshuffle_lz4(dcpl.get())))
    return {};
  return H5Id(H5Dcreate2(parent, name, file_type, space.get(), H5P_DEFAULT, dcpl.get(), dapl),
              H5Dclose);
}

}  // namespace

std::string interrupted_error(const std::string& session_id) {
  return std::string(kInterruptedPrefix) +
         " the session is recording, or the daemon was killed before it ended; this file may "
         "lack acknowledged frames: `ptypilot recover " + session_id +
         ".journal` rebuilds it from the journal with every one";
}

SessionFileState read_session_file_state(const fs::path& path) {
  SessionFileState state;
  hdf5::CaptureErrors capture;
  std::error_code ec;
  if (!fs::is_regular_file(path, ec)) return state;
  state.exists = true;
  // A file HDF5 cannot open, or that another process is writing (HDF5 locks it), is unreadable.
  H5Id file(H5Fopen(path.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT), H5Fclose);
  if (!file.valid()) {
    hdf5::forget_errors();
    return state;
  }
  state.readable = true;
  if (H5Aexists(file.get(), "complete") > 0) {
    H5Id attr(H5Aopen(file.get(), "complete", H5P_DEFAULT), H5Aclose);
    std::uint8_t flag = 0;
    if (attr.valid() && H5Aread(attr.get(), H5T_NATIVE_UINT8, &flag) >= 0) state.complete = flag;
  }
  if (H5Aexists(file.get(), "error") > 0) {
    H5Id attr(H5Aopen(file.get(), "error", H5P_DEFAULT), H5Aclose);
    H5Id type(H5Tcopy(H5T_C_S1), H5Tclose);
    char* text = nullptr;
    if (attr.valid() && type.valid() && H5Tset_size(type.get(), H5T_VARIABLE) >= 0 &&
        H5Tset_cset(type.get(), H5T_CSET_UTF8) >= 0 && H5Aread(attr.get(), type.get(), &text) >= 0 &&
        text) {
      state.error = text;
      H5free_memory(text);
    }
  }
  hdf5::forget_errors();
  return state;
}

Status Hdf5SessionWriter::create(const fs::path& path, const SessionInfo& info,
                                 const std::string& recovered_from) {
  path_ = path;
  rows_ = static_cast<hsize_t>(info.frame_rows);
  cols_ = static_cast<hsize_t>(info.frame_cols);
  counts_type_ = dtype_file_type(info.frame_dtype);
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
       !write_string_attribute(root, "recovered_from", recovered_from)) ||
      (recovered_from.empty() &&
       !write_string_attribute(root, "error", interrupted_error(info.session_id))))
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
  counts_ = extendible(g, "counts", counts_type_, {rows_, cols_}, 1, uncached.get(), true);
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

Status Hdf5SessionWriter::append(std::span<const DetectorFrame> frames,
                                 std::span<const std::span<const unsigned char>> chunks) {
  const std::size_t n = frames.size();
  if (n == 0) return Status::Ok();
  if (chunks.size() != n)
    return {StatusCode::kInternal, path_.string() + ": " + std::to_string(n) + " frames but " +
                                       std::to_string(chunks.size()) + " chunks"};
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
                              : append_chunks(item.dset.get(), chunks);
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

Status Hdf5SessionWriter::write_sub_sequence(const SubSequenceRecord& r) {
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

Status Hdf5SessionWriter::flush() {
  if (H5Fflush(file_.get(), H5F_SCOPE_LOCAL) < 0) return hdf5_status(path_, "flush");
  return Status::Ok();
}

Status Hdf5SessionWriter::finish(bool complete, const std::string& error,
                                 const std::string& summary_json) {
  if (!file_.valid()) return Status::Ok();
  Status status;
  const std::uint8_t flag = complete ? 1 : 0;
  // `error` tells the truth in every file: the reason, or, when complete, absent.
  const bool error_ok =
      complete ? H5Aexists(file_.get(), "error") <= 0 || H5Adelete(file_.get(), "error") >= 0
               : write_string_attribute(file_.get(), "error",
                                        error.empty() ? "the session ended incomplete" : error);
  const bool summary_ok =
      summary_json.empty() || write_string_attribute(file_.get(), "summary_json", summary_json);
  if (!write_scalar_attribute(file_.get(), "complete", H5T_STD_U8LE, H5T_NATIVE_UINT8, flag) ||
      !error_ok || !summary_ok)
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

void Hdf5SessionWriter::close() {
  for (H5Id* d : datasets()) d->reset();
  sub_sequences_.reset();
  file_.reset();
}

std::array<H5Id*, 7> Hdf5SessionWriter::datasets() {
  return {&counts_, &position_, &frame_index_, &sub_sequence_, &position_index_, &timestamp_,
          &electrons_};
}

bool Hdf5SessionWriter::set_length(hid_t dset, const std::vector<hsize_t>& tail,
                                   hsize_t length) {
  std::vector<hsize_t> dims{length};
  dims.insert(dims.end(), tail.begin(), tail.end());
  return H5Dset_extent(dset, dims.data()) >= 0;
}

// Each frame is one chunk of /frames/counts, already compressed as the filter would, so it goes
// in with H5Dwrite_chunk (filter mask 0: every filter applied): no selection, no type
// conversion, no second compression, no gather copy.
bool Hdf5SessionWriter::append_chunks(hid_t dset,
                                      std::span<const std::span<const unsigned char>> chunks) {
  const hsize_t n = chunks.size();
  if (!set_length(dset, {rows_, cols_}, rows_written_ + n)) return false;
  for (hsize_t i = 0; i < n; ++i) {
    const hsize_t offset[3] = {rows_written_ + i, 0, 0};
    if (H5Dwrite_chunk(dset, H5P_DEFAULT, 0, offset, chunks[i].size(), chunks[i].data()) < 0)
      return false;
  }
  return true;
}

bool Hdf5SessionWriter::extend_and_write(hid_t dset, hid_t mem_type,
                                         const std::vector<hsize_t>& tail, hsize_t n,
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

}  // namespace ptypilot::recorder
