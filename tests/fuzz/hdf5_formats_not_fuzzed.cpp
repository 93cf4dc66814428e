// fuzz_recorded_dataset covers the readers that parse bytes themselves (.npy, .mib, sidecars,
// .hdr). The HDF5 formats' bytes are parsed by libhdf5, so their reader is left out of the fuzz
// build, and open_recorded_dataset() refuses an HDF5 file here as it refuses any bad file.
#include <filesystem>
#include <memory>
#include <stdexcept>

#include "recorded_formats.hpp"

namespace ptypilot::recorded {

std::unique_ptr<RecordedDataset> open_hdf5(const std::filesystem::path& path) {
  throw std::runtime_error(path.string() + ": HDF5 formats are not part of the fuzz build");
}

}  // namespace ptypilot::recorded
