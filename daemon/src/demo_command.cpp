// `ptypilot demo`: the closed loop on one machine. The orchestration, the metrics and the
// pictures are Python (models/ptypilot/demo.py, matplotlib); this subcommand runs it with the
// paths of this build, so that `ptypilot demo` and `deploy/run demo` are the same thing. The
// daemon itself (`serve`) never needs Python.
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <stdexcept>
#include <string>
#include <vector>

namespace ptypilot {

int run_demo(const std::vector<std::string>& args) {
  namespace fs = std::filesystem;
  const fs::path bin = fs::canonical("/proc/self/exe").parent_path();
  const fs::path python_dir = bin.parent_path() / "python";  // ptypilot_core, ptypilot_pb2
  const fs::path models = fs::path(PTYPILOT_SOURCE_DIR) / "models";
  std::string path = python_dir.string() + ":" + models.string();
  if (const char* old = std::getenv("PYTHONPATH")) path += std::string(":") + old;
  setenv("PYTHONPATH", path.c_str(), 1);

  std::vector<std::string> argv_strings = {"/usr/bin/python3", "-m", "ptypilot.demo", "--bin",
                                           bin.string()};
  argv_strings.insert(argv_strings.end(), args.begin(), args.end());
  std::vector<char*> argv;
  for (auto& s : argv_strings) argv.push_back(s.data());
  argv.push_back(nullptr);
  execv(argv[0], argv.data());
  throw std::runtime_error("cannot run /usr/bin/python3 for the demo (python3 and the packages in "
                           "deploy/debian-packages.txt are needed): " + std::string(strerror(errno)));
}

}  // namespace ptypilot
