// The `ptypilot bench` subcommands, each defined in the file of its benchmark.
#pragma once

#include "ptypilot/wire/command.hpp"

namespace ptypilot {

Command bench_reconstruct_command();  // bench_reconstruct.cpp
Command bench_loop_command();         // bench_daemon.cpp
Command bench_ingest_command();       // bench_daemon.cpp

}  // namespace ptypilot
