// What the program finds beside itself rather than at a path baked in at compile time, so that a
// build tree, a copy of it, or an installed prefix all work: <prefix>/bin/ptypilot finds
// <prefix>/python and <prefix>/share/ptypilot/models. In the build tree these two are symbolic
// links into the source tree (models/CMakeLists.txt), so edited Python needs no rebuild.
#pragma once

#include <filesystem>

namespace ptypilot {

// The directory of the running program (/proc/self/exe, links resolved). Throws
// std::filesystem::filesystem_error if /proc is not there.
std::filesystem::path program_directory();

// <program_directory>/../python: the ptypilot package, ptypilot_core and ptypilot_pb2.
std::filesystem::path python_directory();

// <program_directory>/../share/ptypilot/models: the shipped policies (models/shipped).
std::filesystem::path shipped_models_directory();

}  // namespace ptypilot
