// exec_python_module(): how `ptypilot demo` and `ptypilot eval` run their Python module.
#include "python_command.hpp"

#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <stdexcept>
#include <string>
#include <vector>

#include "ptypilot/wire/program_paths.hpp"

namespace ptypilot {

void exec_python_module(const std::string& module, const std::vector<std::string>& args,
                        const std::string& what) {
  namespace fs = std::filesystem;
  const fs::path python_dir = python_directory();  // ptypilot, ptypilot_core, ptypilot_pb2
  if (!fs::exists(python_dir / "ptypilot"))
    throw std::runtime_error("no Python package at " + (python_dir / "ptypilot").string() +
                             " for " + what + " (configuring the build makes it a link to "
                             "models/ptypilot: run cmake again)");
  std::string path = python_dir.string();
  // PYTHONPATH from the environment still counts, after this build's own.
  if (const char* old = std::getenv("PYTHONPATH")) path += std::string(":") + old;
  setenv("PYTHONPATH", path.c_str(), 1);

  std::vector<std::string> argv_strings = {"/usr/bin/python3", "-m", module, "--bin",
                                           program_directory().string()};
  argv_strings.insert(argv_strings.end(), args.begin(), args.end());
  std::vector<char*> argv;
  for (auto& s : argv_strings) argv.push_back(s.data());
  argv.push_back(nullptr);
  execv(argv[0], argv.data());
  throw std::runtime_error("cannot run /usr/bin/python3 for " + what +
                           " (python3 and the packages in deploy/debian-packages.txt are "
                           "needed): " + std::string(strerror(errno)));
}

Command python_module_command(std::string name, std::string summary, std::string module,
                              std::string what) {
  return {.name = std::move(name),
          .summary = std::move(summary),
          .run_unparsed = [module = std::move(module), what = std::move(what)](
                              const std::vector<std::string>& args) -> int {
            exec_python_module(module, args, what);
          }};
}

}  // namespace ptypilot
