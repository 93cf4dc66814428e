#include "ptypilot/scan_driver/point_list_driver.hpp"

#include <charconv>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <stdexcept>
#include <system_error>
#include <utility>

namespace ptypilot {

namespace {

// Shortest text that parses back to the same double, so the hardware visits exactly the
// position that passed Safety.
void append_double(std::string& out, double value) {
  char buffer[32];
  const auto result = std::to_chars(buffer, buffer + sizeof buffer, value);
  out.append(buffer, result.ptr);
}

// The session id becomes part of a file name: it must not name another directory or hide the
// file.
bool usable_in_file_name(std::string_view session_id) {
  if (session_id.empty() || session_id.front() == '.') return false;
  for (char c : session_id)
    if (c == '/' || c == '\\' || c == '\0' || static_cast<unsigned char>(c) < 0x20) return false;
  return true;
}

}  // namespace

PointListFileDriver::PointListFileDriver(std::filesystem::path directory)
    : directory_(std::move(directory)) {
  std::error_code ec;
  if (!std::filesystem::is_directory(directory_, ec))
    throw std::invalid_argument("point-list scan driver: " + directory_.string() +
                                " is not an existing directory");
}

std::filesystem::path PointListFileDriver::file_for(std::string_view session_id,
                                                    std::uint32_t sub_sequence) const {
  char suffix[32];
  std::snprintf(suffix, sizeof suffix, "_%04u.csv", static_cast<unsigned>(sub_sequence));
  return directory_ / (std::string(session_id) + suffix);
}

Status PointListFileDriver::submit(const ScanRequest& request) {
  if (!usable_in_file_name(request.session_id))
    return invalid_argument("point-list scan driver: session id '" + request.session_id +
                            "' cannot be used in a file name");
  if (request.positions_A.empty())
    return invalid_argument("point-list scan driver: sub-sequence " +
                            std::to_string(request.sub_sequence) + " has no positions");

  std::string text = "index,y_A,x_A,dwell_s\n";
  text.reserve(text.size() + request.positions_A.size() * 48);
  for (std::size_t i = 0; i < request.positions_A.size(); ++i) {
    const Vec2 p = request.positions_A[i];
    if (!std::isfinite(p.y) || !std::isfinite(p.x))
      return invalid_argument("point-list scan driver: position " + std::to_string(i) +
                              " is not finite");
    text += std::to_string(i);
    text += ',';
    append_double(text, p.y);
    text += ',';
    append_double(text, p.x);
    text += ',';
    append_double(text, request.dwell_s);
    text += '\n';
  }

  const std::filesystem::path target = file_for(request.session_id, request.sub_sequence);
  std::error_code ec;
  if (std::filesystem::exists(target, ec))
    return failed_precondition("point-list scan driver: " + target.string() +
                               " already exists; each sub-sequence is written once");
  // Hidden and without the .csv extension, so a watcher that globs *.csv never picks it up.
  const std::filesystem::path temp = directory_ / ("." + target.filename().string() + ".tmp");
  {
    std::ofstream out(temp, std::ios::binary | std::ios::trunc);
    out.write(text.data(), static_cast<std::streamsize>(text.size()));
    out.close();
    if (!out) {
      std::filesystem::remove(temp, ec);
      return {StatusCode::kUnavailable, "point-list scan driver: could not write " + temp.string()};
    }
  }
  std::filesystem::rename(temp, target, ec);  // atomic within one directory
  if (ec) {
    std::error_code ignored;
    std::filesystem::remove(temp, ignored);
    return {StatusCode::kUnavailable, "point-list scan driver: could not rename " + temp.string() +
                                          " to " + target.string() + ": " + ec.message()};
  }
  return Status::Ok();
}

}  // namespace ptypilot
