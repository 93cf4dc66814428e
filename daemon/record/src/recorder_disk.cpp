#include "recorder_disk.hpp"

#include <fcntl.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace ptypilot::recorder {
namespace fs = std::filesystem;

std::string errno_text(int err) {
  return std::string(std::strerror(err)) + " (errno " + std::to_string(err) + ")";
}

Status errno_status(const fs::path& path, std::string_view what, int err) {
  const StatusCode code = (err == ENOSPC || err == EDQUOT) ? StatusCode::kUnavailable
                                                           : StatusCode::kInternal;
  return {code, path.string() + ": " + std::string(what) + " failed: " + errno_text(err)};
}

Status sync_directory(const fs::path& dir) {
  const int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return errno_status(dir, "open directory", errno);
  const int r = ::fsync(fd);
  const int err = errno;
  ::close(fd);
  return r == 0 ? Status::Ok() : errno_status(dir, "fsync directory", err);
}

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

}  // namespace ptypilot::recorder
