// A read-only memory map of a whole file. Recorded data sets are many GB; mapped, a frame costs
// the pages it touches, and the rest of the file stays on disk.
//
// A file that another process truncates while it is mapped makes a read of the lost pages raise
// SIGBUS; recorded data sets are not written while they are replayed.
#pragma once

#include <cstddef>
#include <filesystem>
#include <span>

namespace ptypilot {

class MappedFile {
 public:
  // Throws std::runtime_error naming the path and the system's reason when the file cannot be
  // opened or mapped. An empty file maps to no bytes.
  explicit MappedFile(const std::filesystem::path& path);
  ~MappedFile();
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;

  std::span<const std::byte> bytes() const { return {data_, size_}; }
  std::size_t size() const { return size_; }
  const std::filesystem::path& path() const { return path_; }

 private:
  std::filesystem::path path_;
  const std::byte* data_ = nullptr;
  std::size_t size_ = 0;
};

}  // namespace ptypilot
