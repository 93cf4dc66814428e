// PointListFileDriver: hands each sub-sequence to the scan hardware as a CSV point list in a
// directory that the hardware (or its control software) watches.
//
// One file per submit, named `<session_id>_<sub_sequence:04d>.csv`:
//
//   index,y_A,x_A,dwell_s
//   0,1.2,3.4,0.001
//   ...
//
// `index` is the position's index in the list (the frame's position_index); y_A, x_A are in
// Angstrom relative to the FOV origin, printed so that they parse back to the same double. The
// frame for row i must carry frame_index = first_frame_index + i; the file does not repeat
// first_frame_index because the acquisition software numbers frames itself.
//
// The file is written under a hidden temporary name and renamed into place, so a watcher never
// sees half a file. "Accepted" here means only that the file is in place: this driver cannot
// know whether the hardware has read it.
#pragma once

#include <filesystem>
#include <string>
#include <string_view>

#include "ptypilot/scan_driver/scan_driver.hpp"
#include "ptypilot/status.hpp"

namespace ptypilot {

class PointListFileDriver final : public ScanDriver {
 public:
  // Throws std::invalid_argument when `directory` does not exist or is not a directory: the
  // hardware watches a fixed place, so creating a new one would hide a typo.
  explicit PointListFileDriver(std::filesystem::path directory);

  // kInvalidArgument for a session id that cannot be part of a file name or an empty list;
  // kFailedPrecondition when the file for this sub-sequence already exists (a list is written
  // once; the hardware may already be scanning it); kUnavailable when writing fails.
  Status submit(const ScanRequest& request) override;
  std::string_view name() const override { return "point-list"; }

  const std::filesystem::path& directory() const { return directory_; }
  // Where submit() puts the list for this session and sub-sequence.
  std::filesystem::path file_for(std::string_view session_id, std::uint32_t sub_sequence) const;

 private:
  std::filesystem::path directory_;
};

}  // namespace ptypilot
