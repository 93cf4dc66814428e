#include "ptypilot/daemon/cli_args.hpp"

#include <stdexcept>

namespace ptypilot {

CliArgs::CliArgs(const std::vector<std::string>& args, const std::set<std::string>& options,
                 const std::set<std::string>& flags) {
  for (std::size_t i = 0; i < args.size(); ++i) {
    const std::string& a = args[i];
    if (a.rfind("--", 0) != 0) throw std::invalid_argument("unexpected argument '" + a + "'");
    std::string name = a.substr(2);
    std::string value;
    if (auto eq = name.find('='); eq != std::string::npos) {
      value = name.substr(eq + 1);
      name = name.substr(0, eq);
      if (!options.count(name)) throw std::invalid_argument("unknown option --" + name);
    } else if (flags.count(name)) {
      value = "1";
    } else if (options.count(name)) {
      if (i + 1 >= args.size()) throw std::invalid_argument("option --" + name + " needs a value");
      value = args[++i];
    } else {
      throw std::invalid_argument("unknown option --" + name);
    }
    values_[name] = value;
  }
}

std::string CliArgs::get(const std::string& name, const std::string& fallback) const {
  auto it = values_.find(name);
  return it == values_.end() ? fallback : it->second;
}

long CliArgs::get_int(const std::string& name, long fallback) const {
  auto it = values_.find(name);
  if (it == values_.end()) return fallback;
  std::size_t used = 0;
  long v = 0;
  try {
    v = std::stol(it->second, &used);
  } catch (const std::exception&) {
    used = 0;
  }
  if (used != it->second.size())
    throw std::invalid_argument("--" + name + " expects an integer, got '" + it->second + "'");
  return v;
}

double CliArgs::get_double(const std::string& name, double fallback) const {
  auto it = values_.find(name);
  if (it == values_.end()) return fallback;
  std::size_t used = 0;
  double v = 0;
  try {
    v = std::stod(it->second, &used);
  } catch (const std::exception&) {
    used = 0;
  }
  if (used != it->second.size())
    throw std::invalid_argument("--" + name + " expects a number, got '" + it->second + "'");
  return v;
}

}  // namespace ptypilot
