// What the recorder asks of the filesystem besides its two files: errors as Status, durable new
// names, and the free space that lets a session stop while its HDF5 file can still be closed.
// Internal to the recorder's files in daemon/record/src (hdf5_recorder.hpp says why the space
// matters).
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <string_view>

#include "ptypilot/status.hpp"

namespace ptypilot::recorder {

// strerror(err) followed by the number, for messages.
std::string errno_text(int err);

// "<path>: <what> failed: <errno text>". kUnavailable for a full disk or quota, an outside
// condition a person can fix; kInternal for any other I/O fault.
Status errno_status(const std::filesystem::path& path, std::string_view what, int err);

// A new file's name is durable only once its directory is synced.
Status sync_directory(const std::filesystem::path& dir);

// Space set aside on the recording's filesystem, given back on the first error so that the HDF5
// file can still be finalised when the disk is full: closing writes metadata, and HDF5 cannot
// close a file it cannot write (the file is then unreadable). Removes the file if it cannot
// hold `bytes`.
Status create_reserve(const std::filesystem::path& path, std::uint64_t bytes);

// kUnavailable ("no space left") unless `dir` keeps `keep_free` bytes free after a write of
// `need`; always Ok when keep_free is 0.
Status check_free_space(const std::filesystem::path& dir, std::uint64_t need,
                        std::uint64_t keep_free);

}  // namespace ptypilot::recorder
