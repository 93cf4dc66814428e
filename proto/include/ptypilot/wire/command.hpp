// The commands of the ptypilot programs (ptypilot, ptypilot-sim). Each command file describes
// its command (name, summary, option table, run function) in one place; run_command_line() finds it, parses its options with
// that table (cli_args.hpp) and prints its --help from the same table.
//
// Exit codes, for every command: 0 done (and for --help); 1 the command failed (the reason on
// stderr, and a log line); 2 called wrongly: unknown command or option, missing or malformed
// argument (UsageError); others as a command documents (`ctl wait`: 3 on timeout).
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "ptypilot/wire/cli_args.hpp"

namespace ptypilot {

// The `{}` on every member: without it GCC 12 (-Wextra) warns for each member that a designated
// initializer, as the command files write them, leaves out.
struct Command {
  std::string name{};
  std::string summary{};      // one line, in the list of the parent's --help
  std::string description{};  // under the usage line of the command's own --help; may be empty
  std::vector<OptionSpec> options{};
  std::vector<PositionalSpec> positionals{};
  std::function<int(const CliArgs&)> run{};
  // A group (`bench`, `ctl`): the first argument after the group's own options names one of
  // these, which also takes the group's options.
  std::vector<Command> subcommands{};
  // Instead of `run`, for a command whose arguments another program parses (demo and eval:
  // Python's argparse, which also answers their --help): the arguments as given.
  std::function<int(const std::vector<std::string>&)> run_unparsed{};
};

// A program is a Command too: its name is the program's, its subcommands are the commands.
// run_command_line(program, ARGS...) (the program's name not included) returns the exit code.
// Failures are printed here: a command's exception becomes exit 1, a UsageError exit 2.
int run_command_line(const Command& program, const std::vector<std::string>& args);

// What `<path> --help` prints for `command`; `path` is "ptypilot bench reconstruct", and
// `inherited` are the options of the groups above it.
std::string command_help(const Command& command, const std::string& path,
                         const std::vector<OptionSpec>& inherited = {});

// The commands every program has: `help [COMMAND [SUB]]` (= `COMMAND [SUB] --help`) and
// `version`.
Command help_command(const Command& (*program)());
Command version_command(const std::string& program_name);

}  // namespace ptypilot
