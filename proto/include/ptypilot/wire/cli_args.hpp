// A small `--key value` / `--flag` parser for the ptypilot subcommands. Unknown options are an
// error, so a typo never becomes a silent default.
#pragma once

#include <map>
#include <set>
#include <string>
#include <vector>

namespace ptypilot {

class CliArgs {
 public:
  // `options` take a value, `flags` do not. Throws std::invalid_argument on anything else.
  CliArgs(const std::vector<std::string>& args, const std::set<std::string>& options,
          const std::set<std::string>& flags = {});

  bool has(const std::string& name) const { return values_.count(name) > 0; }
  std::string get(const std::string& name, const std::string& fallback) const;
  long get_int(const std::string& name, long fallback) const;
  double get_double(const std::string& name, double fallback) const;

 private:
  std::map<std::string, std::string> values_;
};

}  // namespace ptypilot
