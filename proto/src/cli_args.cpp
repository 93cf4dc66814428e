#include "ptypilot/wire/cli_args.hpp"

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

namespace {

// Parses the whole of `text` with `parse` (std::stol or std::stod), or names the option.
template <typename T, typename Parse>
T parse_whole(const std::string& name, const std::string& text, const char* what, Parse parse) {
  std::size_t used = 0;
  T value{};
  try {
    value = parse(text, &used);
  } catch (const std::exception&) {
    used = 0;
  }
  if (used == 0 || used != text.size())
    throw std::invalid_argument("--" + name + " expects " + what + ", got '" + text + "'");
  return value;
}

}  // namespace

long CliArgs::get_int(const std::string& name, long fallback) const {
  auto it = values_.find(name);
  if (it == values_.end()) return fallback;
  return parse_whole<long>(name, it->second, "an integer",
                           [](const std::string& t, std::size_t* used) { return std::stol(t, used); });
}

double CliArgs::get_double(const std::string& name, double fallback) const {
  auto it = values_.find(name);
  if (it == values_.end()) return fallback;
  return parse_whole<double>(name, it->second, "a number",
                             [](const std::string& t, std::size_t* used) { return std::stod(t, used); });
}

}  // namespace ptypilot
