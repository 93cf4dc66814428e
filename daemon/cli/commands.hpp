// The commands of the ptypilot program. They are listed by ptypilot_program(), not registered by
// static objects in their files: the command files are in static libraries, and the linker
// leaves out an object file that nothing refers to, its registration with it.
#pragma once

#include <vector>

#include "ptypilot/wire/command.hpp"

namespace ptypilot {

Command serve_command();  // serve_command.cpp
Command ctl_command();    // ctl.cpp
Command demo_command();   // demo_command.cpp
Command eval_command();   // eval_command.cpp
Command report_command(); // report_command.cpp
Command config_command(); // config_command.cpp
Command counters_command(); // counters_command.cpp
Command recover_command();  // recover_command.cpp
Command keygen_command();   // keygen_command.cpp
Command calibrate_command(); // calibrate_command.cpp

// The program: its commands in the order `ptypilot --help` lists them.
const Command& ptypilot_program();
const std::vector<Command>& commands();

}  // namespace ptypilot
