// Writes float32 arrays as NumPy .npy files (format 1.0), readable by numpy.load.
#pragma once

#include <filesystem>
#include <span>
#include <vector>

namespace ptypilot {

// Throws std::runtime_error naming the path when the file cannot be written.
void write_npy(const std::filesystem::path& path, std::span<const float> data,
               const std::vector<std::size_t>& shape);

}  // namespace ptypilot
