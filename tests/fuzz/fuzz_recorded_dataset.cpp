// libFuzzer target: the readers of recorded data sets that parse the file's bytes themselves
// (recorded_dataset.hpp), through open_recorded_dataset() as `ptypilot replay` calls it. Byte 0
// picks what the rest of the input is:
//   0  an .npy file (4-D), with a valid sidecar;
//   1  a Merlin .mib file, with a valid sidecar that gives a 2 x 2 scan;
//   2  a Merlin .hdr header beside a valid 2 x 2 .mib, with a sidecar without scan_shape;
//   3  the sidecar JSON of a valid .npy.
// Opening may refuse the input (std::runtime_error naming the file and offset, the documented
// error) and reading a frame may return an error Status; any other exception, a crash or a
// sanitizer report is a bug. The HDF5 formats are not fuzzed here: their bytes are parsed by
// libhdf5, not by ptypilot.
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <stdexcept>
#include <string>
#include <vector>

#include "ptypilot/recorded/recorded_dataset.hpp"
#include "recorded_fixtures.hpp"

using namespace ptypilot;
using namespace ptypilot::fuzz;
namespace fs = std::filesystem;

namespace {

void write(const fs::path& path, const void* data, std::size_t size) {
  std::ofstream(path, std::ios::binary | std::ios::trunc)
      .write(static_cast<const char*>(data), static_cast<std::streamsize>(size));
}

void write(const fs::path& path, const std::string& text) { write(path, text.data(), text.size()); }

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static const fs::path dir = [] {
    const fs::path d = fs::temp_directory_path() / ("ptypilot-fuzz-" + std::to_string(getpid()));
    fs::create_directories(d);
    return d;
  }();
  if (size < 1) return 0;
  const std::uint8_t* body = data + 1;
  const std::size_t body_size = size - 1;
  fs::path file;
  switch (data[0] % 4) {
    case 0:
      file = dir / "set.npy";
      write(file, body, body_size);
      write(dir / "set.json", kSidecarStart + "}");
      break;
    case 1:
      file = dir / "set.mib";
      write(file, body, body_size);
      write(dir / "set.json", kSidecarStart + R"(, "scan_shape": [2, 2]})");
      break;
    case 2: {
      file = dir / "set.mib";
      const std::vector<char> mib = valid_mib();
      write(file, mib.data(), mib.size());
      write(dir / "set.hdr", body, body_size);
      write(dir / "set.json", kSidecarStart + "}");
      break;
    }
    default: {
      file = dir / "set.npy";
      const std::vector<char> npy = valid_npy();
      write(file, npy.data(), npy.size());
      write(dir / "set.json", body, body_size);
      break;
    }
  }
  try {
    const std::unique_ptr<RecordedDataset> dataset = open_recorded_dataset(file);
    std::vector<float> frame(dataset->frame_pixels());
    const std::size_t n = dataset->frame_count();
    for (std::size_t i : {std::size_t{0}, n / 2, n - 1})
      if (i < n) (void)dataset->read_frame(i, frame);
  } catch (const std::runtime_error&) {
    // The documented refusal of a bad file.
  }
  fs::remove(dir / "set.hdr");
  return 0;
}
