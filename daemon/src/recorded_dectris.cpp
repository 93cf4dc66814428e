// DECTRIS master/data HDF5 files (format: recorded_dataset.hpp).
#include <stdexcept>

#include "recorded_formats.hpp"

namespace ptypilot::recorded {

std::unique_ptr<RecordedDataset> open_dectris(const std::filesystem::path& path) {
  throw std::runtime_error(path.string() +
                           ": DECTRIS master files are not supported yet (they need the "
                           "bitshuffle-LZ4 codec)");
}

}  // namespace ptypilot::recorded
