#include "ptypilot/wire/cli_args.hpp"

#include <charconv>
#include <cmath>

namespace ptypilot {

CliArgs::CliArgs(const std::vector<std::string>& args, const std::vector<OptionSpec>& options,
                 const std::vector<PositionalSpec>& positionals)
    : CliArgs(args, options, positionals, false) {}

CliArgs CliArgs::leading(const std::vector<std::string>& args, const std::vector<OptionSpec>& options) {
  return CliArgs(args, options, {}, true);
}

CliArgs::CliArgs(const std::vector<std::string>& args, const std::vector<OptionSpec>& options,
                 const std::vector<PositionalSpec>& positionals, bool stop_at_positional) {
  std::map<std::string, const OptionSpec*> table;
  for (const OptionSpec& o : options) {
    table[o.name] = &o;
    defaults_[o.name] = o.fallback;
    labels_[o.name] = "--" + o.name;
  }
  for (const PositionalSpec& p : positionals) {
    defaults_[p.name] = p.fallback;
    labels_[p.name] = p.name;
  }
  std::size_t next_positional = 0;
  for (std::size_t i = 0; i < args.size(); ++i) {
    const std::string& a = args[i];
    if (a == "--help" || a == "-h") {
      help_ = true;
      return;  // what follows may be wrong; the help says how to put it right
    }
    if (a.rfind("--", 0) != 0) {
      if (stop_at_positional) {
        rest_.assign(args.begin() + static_cast<std::ptrdiff_t>(i), args.end());
        return;
      }
      if (next_positional >= positionals.size())
        throw UsageError("unexpected argument '" + a + "'");
      values_[positionals[next_positional++].name] = a;
      continue;
    }
    std::string name = a.substr(2);
    std::string value;
    const auto eq = name.find('=');
    if (eq != std::string::npos) {
      value = name.substr(eq + 1);
      name.resize(eq);
    }
    const auto it = table.find(name);
    if (it == table.end()) throw UsageError("unknown option --" + name);
    if (it->second->value.empty()) {
      if (eq != std::string::npos) throw UsageError("option --" + name + " takes no value");
      value.push_back('1');  // not `value = "1"`, on which GCC 12's -Wrestrict misfires
    } else if (eq == std::string::npos) {
      if (i + 1 >= args.size()) throw UsageError("option --" + name + " needs a value");
      value = args[++i];
    }
    values_[name] = value;
  }
  for (std::size_t p = next_positional; p < positionals.size(); ++p)
    if (positionals[p].required) throw UsageError("missing " + positionals[p].name);
}

const std::string& CliArgs::value_or_default(const std::string& name) const {
  if (auto it = values_.find(name); it != values_.end()) return it->second;
  const auto it = defaults_.find(name);
  if (it == defaults_.end()) throw std::logic_error("option --" + name + " is not in the command's table");
  return it->second;
}

std::string CliArgs::get(const std::string& name) const { return value_or_default(name); }

std::string CliArgs::get(const std::string& name, const std::string& fallback) const {
  return has(name) ? value_or_default(name) : fallback;
}

// Parses the whole of the value with `parse` (std::stol or std::stod), or names the option.
template <typename T, typename Parse>
T CliArgs::parse_number(const std::string& name, const char* what, Parse parse) const {
  const std::string& text = value_or_default(name);
  if (text.empty() && !has(name))
    throw std::logic_error(labels_.at(name) + " has no default; the command must check has()");
  std::size_t used = 0;
  T value{};
  try {
    value = parse(text, &used);
  } catch (const std::exception&) {
    used = 0;
  }
  if (used == 0 || used != text.size())
    throw UsageError(labels_.at(name) + " expects " + what + ", got '" + text + "'");
  return value;
}

long CliArgs::get_int(const std::string& name) const {
  return parse_number<long>(name, "an integer",
                            [](const std::string& t, std::size_t* used) { return std::stol(t, used); });
}

double CliArgs::get_double(const std::string& name) const {
  return parse_number<double>(name, "a number",
                              [](const std::string& t, std::size_t* used) { return std::stod(t, used); });
}

std::string default_text(double x) {
  // Whole numbers in full ("100000", as people type a dose), not "1e+05".
  if (x == std::trunc(x) && std::fabs(x) < 1e15) return std::to_string(static_cast<long long>(x));
  char text[32];
  const auto result = std::to_chars(text, text + sizeof text, x);
  return std::string(text, result.ptr);
}

}  // namespace ptypilot
