// The commands of ptypilot-sim (which `ptypilot sim-detector` and `ptypilot replay` run).
#pragma once

#include "ptypilot/wire/command.hpp"

namespace ptypilot {

Command sim_detector_command();  // sim_detector_command.cpp
Command replay_command();        // replay_command.cpp

// ptypilot-sim itself: those two, help and version.
const Command& sim_program();

}  // namespace ptypilot
