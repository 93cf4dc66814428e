// The option table of a ptypilot command and the parser it drives. Each option is declared once,
// with its default and its help, so that parsing, defaults and `--help` cannot disagree.
// Unknown options are an error, so a typo never becomes a silent default.
#pragma once

#include <map>
#include <stdexcept>
#include <string>
#include <vector>

namespace ptypilot {

// A mistake on the command line (unknown option, missing value, malformed number). main() exits
// 2 for it, as for an unknown command, so a script can tell "called wrongly" from "failed" (1).
struct UsageError : std::invalid_argument {
  using std::invalid_argument::invalid_argument;
};

// (The `{}` on the members: see Command in command.hpp.)
struct OptionSpec {
  std::string name{};      // without the leading "--"
  std::string value{};     // the value's name in --help ("N", "FILE"); empty: a flag, no value
  std::string fallback{};  // what get() returns when the option is absent; empty: no default
  std::string help{};
};

// An argument without "--", in order: `ptypilot ctl configure FILE`.
struct PositionalSpec {
  std::string name{};  // as --help shows it, and the key of has() and get()
  bool required = true;
  std::string fallback{};  // what get() returns when an optional one is absent
  std::string help{};
};

class CliArgs {
 public:
  // Throws UsageError for an option not in `options`, an option without its value, or a
  // positional argument too many or missing. Stops at "--help" or "-h" (help_requested()).
  CliArgs(const std::vector<std::string>& args, const std::vector<OptionSpec>& options,
          const std::vector<PositionalSpec>& positionals = {});

  // The options in front of a command group's subcommand (`ctl --endpoint E status`): parses up
  // to the first argument that is not an option; `rest()` is that argument and what follows.
  static CliArgs leading(const std::vector<std::string>& args, const std::vector<OptionSpec>& options);

  bool help_requested() const { return help_; }
  const std::vector<std::string>& rest() const { return rest_; }

  // Given on the command line (not merely defaulted).
  bool has(const std::string& name) const { return values_.count(name) > 0; }
  // The value given, else the table's default. Asking for a name the table does not have is a
  // bug in the command (std::logic_error), not a user's mistake.
  std::string get(const std::string& name) const;
  // For options whose default is not a constant of the table (a config file's value).
  std::string get(const std::string& name, const std::string& fallback) const;
  long get_int(const std::string& name) const;
  double get_double(const std::string& name) const;

 private:
  CliArgs(const std::vector<std::string>& args, const std::vector<OptionSpec>& options,
          const std::vector<PositionalSpec>& positionals, bool stop_at_positional);
  const std::string& value_or_default(const std::string& name) const;
  template <typename T, typename Parse>
  T parse_number(const std::string& name, const char* what, Parse parse) const;

  std::map<std::string, std::string> values_;
  std::map<std::string, std::string> defaults_;  // every declared name, "" where none
  std::map<std::string, std::string> labels_;    // how errors name it: "--seed", "SECONDS"
  std::vector<std::string> rest_;
  bool help_ = false;
};

// `x` as a table's default, for get_double() to read back: a whole number in full, else the
// shortest text that reads back as `x`.
std::string default_text(double x);

}  // namespace ptypilot
