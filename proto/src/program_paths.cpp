#include "ptypilot/wire/program_paths.hpp"

namespace ptypilot {

std::filesystem::path program_directory() {
  return std::filesystem::canonical("/proc/self/exe").parent_path();
}

std::filesystem::path python_directory() { return program_directory().parent_path() / "python"; }

std::filesystem::path shipped_models_directory() {
  return program_directory().parent_path() / "share" / "ptypilot" / "models";
}

}  // namespace ptypilot
