// Subcommands whose work is Python (orchestration, metrics and pictures with matplotlib): `demo`
// and `eval`. They run a module of the ptypilot package with the paths of this build, so that the
// subcommand and `python3 -m ptypilot.<module> --bin <this build's bin>` are the same thing. The
// daemon itself (`serve`) never needs Python.
#pragma once

#include <string>
#include <vector>

#include "ptypilot/wire/command.hpp"

namespace ptypilot {

// Replaces this process with `/usr/bin/python3 -m <module> --bin <dir of this executable> args...`,
// with python_directory() (program_paths.hpp: the ptypilot package, ptypilot_core,
// ptypilot_pb2) put in front of PYTHONPATH. Returns only by throwing std::runtime_error when
// that directory lacks the package or python3 cannot be run; `what` names the command in that
// message ("the demo").
[[noreturn]] void exec_python_module(const std::string& module, const std::vector<std::string>& args,
                                     const std::string& what);

// A command that is exec_python_module(module, its arguments, what). Its options are argparse's
// in the module, which also answers its --help.
Command python_module_command(std::string name, std::string summary, std::string module,
                              std::string what);

}  // namespace ptypilot
