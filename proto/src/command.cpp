// The dispatch of run_command_line(), --help from the option tables, and the list of commands.
#include "ptypilot/wire/command.hpp"

#include <algorithm>
#include <exception>
#include <iostream>
#include <sstream>

#include "ptypilot/wire/log.hpp"

namespace ptypilot {
namespace {

constexpr std::size_t kWidth = 100;
constexpr std::size_t kMaxColumn = 30;  // a longer option label puts its help on the next line


// `text` in lines of at most kWidth, each after `indent` spaces (the first after `first`, the
// characters already on that line).
void wrap(std::ostream& out, const std::string& text, std::size_t indent, std::size_t first) {
  std::istringstream words(text);
  std::string word;
  std::size_t column = first;
  bool line_empty = true;
  while (words >> word) {
    if (!line_empty && column + 1 + word.size() > kWidth) {
      out << "\n" << std::string(indent, ' ');
      column = indent;
      line_empty = true;
    }
    if (!line_empty) {
      out << ' ';
      ++column;
    }
    out << word;
    column += word.size();
    line_empty = false;
  }
  out << "\n";
}

// Rows of "  LABEL  text", the texts in one column.
void table(std::ostream& out, const std::vector<std::pair<std::string, std::string>>& rows) {
  std::size_t column = 0;
  for (const auto& [label, text] : rows)
    if (label.size() + 4 <= kMaxColumn) column = std::max(column, label.size() + 4);
  for (const auto& [label, text] : rows) {
    out << "  " << label;
    std::size_t at = 2 + label.size();
    if (at + 2 > column) {
      out << "\n";
      at = 0;
    }
    out << std::string(column - at, ' ');
    wrap(out, text, column, column);
  }
}

std::string positional_label(const PositionalSpec& p) {
  return p.required ? p.name : "[" + p.name + "]";
}

std::string option_label(const OptionSpec& o) {
  return "--" + o.name + (o.value.empty() ? "" : " " + o.value);
}

void option_rows(std::vector<std::pair<std::string, std::string>>* rows,
                 const std::vector<OptionSpec>& options) {
  for (const OptionSpec& o : options)
    rows->emplace_back(option_label(o), o.fallback.empty() ? o.help : o.help + " (default: " + o.fallback + ")");
}

const Command* find(const std::vector<Command>& commands, const std::string& name) {
  const auto it = std::find_if(commands.begin(), commands.end(),
                               [&](const Command& c) { return c.name == name; });
  return it == commands.end() ? nullptr : &*it;
}

std::string names(const std::vector<Command>& commands) {
  std::string text;
  for (const Command& c : commands) text += (text.empty() ? "" : ", ") + c.name;
  return text;
}

// Runs `command` with `args`, the arguments after its name; `given` are the options given to
// the groups above it, `inherited` their table. `where` follows the path, for the error message.
int dispatch(const Command& command, const std::string& path, std::vector<std::string> given,
             const std::vector<OptionSpec>& inherited, const std::vector<std::string>& args,
             std::string* where) {
  *where = path;
  if (command.run_unparsed) return command.run_unparsed(args);
  std::vector<OptionSpec> options = inherited;
  options.insert(options.end(), command.options.begin(), command.options.end());
  if (!command.subcommands.empty()) {
    const CliArgs leading = CliArgs::leading(args, options);
    if (leading.help_requested()) {
      std::cout << command_help(command, path, inherited);
      return 0;
    }
    if (leading.rest().empty()) {
      std::cerr << path << ": which command?\n\n" << command_help(command, path, inherited);
      return 2;
    }
    const std::string& name = leading.rest().front();
    const Command* sub = find(command.subcommands, name);
    if (sub == nullptr)
      throw UsageError("unknown command '" + name + "'; the commands: " + names(command.subcommands));
    given.insert(given.end(), args.begin(), args.end() - static_cast<std::ptrdiff_t>(leading.rest().size()));
    return dispatch(*sub, path + " " + name, std::move(given), options,
                    {leading.rest().begin() + 1, leading.rest().end()}, where);
  }
  given.insert(given.end(), args.begin(), args.end());
  const CliArgs parsed(given, options, command.positionals);
  if (parsed.help_requested()) {
    std::cout << command_help(command, path, inherited);
    return 0;
  }
  return command.run(parsed);
}

}  // namespace

Command help_command(const Command& (*program)()) {
  return {.name = "help",
          .summary = "print this text, or what `COMMAND [SUB] --help` prints",
          .positionals = {{.name = "COMMAND", .required = false, .help = "a command"},
                          {.name = "SUB", .required = false, .help = "a command of a group"}},
          .run = [program](const CliArgs& args) {
            std::vector<std::string> line;
            for (const char* name : {"COMMAND", "SUB"})
              if (args.has(name)) line.push_back(args.get(name));
            line.push_back("--help");
            return run_command_line(program(), line);
          }};
}

Command version_command(const std::string& program_name) {
  return {.name = "version", .summary = "print the version", .run = [program_name](const CliArgs&) {
            std::cout << program_name << " " << PTYPILOT_VERSION << "\n";
            return 0;
          }};
}

std::string command_help(const Command& command, const std::string& path,
                         const std::vector<OptionSpec>& inherited) {
  std::ostringstream out;
  std::string usage = "usage: " + path;
  if (!inherited.empty() || !command.options.empty()) usage += " [options]";
  if (!command.subcommands.empty()) usage += " COMMAND [ARGS]";
  for (const PositionalSpec& p : command.positionals) usage.append(" ").append(positional_label(p));
  out << usage << "\n";
  if (const std::string& text = command.description.empty() ? command.summary : command.description;
      !text.empty()) {
    out << "\n";
    wrap(out, text, 0, 0);
  }
  std::vector<std::pair<std::string, std::string>> rows;
  if (!command.subcommands.empty()) {
    for (const Command& c : command.subcommands) {
      std::string label = c.name;
      for (const PositionalSpec& p : c.positionals) label.append(" ").append(positional_label(p));
      rows.emplace_back(label, c.summary);
    }
    out << "\ncommands:\n";
    table(out, rows);
    rows.clear();
  }
  for (const PositionalSpec& p : command.positionals)
    rows.emplace_back(p.name, p.fallback.empty() ? p.help : p.help + " (default: " + p.fallback + ")");
  if (!rows.empty()) {
    out << "\narguments:\n";
    table(out, rows);
    rows.clear();
  }
  option_rows(&rows, command.options);
  option_rows(&rows, inherited);
  rows.emplace_back("-h, --help", "print this text and exit");
  out << "\noptions:\n";
  table(out, rows);
  return out.str();
}

int run_command_line(const Command& program, const std::vector<std::string>& args) {
  std::string where;
  try {
    return dispatch(program, program.name, {}, {}, args, &where);
  } catch (const UsageError& e) {
    std::cerr << where << ": " << e.what() << "\n(`" << where << " --help` lists "
              << "what it takes)\n";
    return 2;
  } catch (const std::exception& e) {
    // Startup errors end here: one structured line, one line a person can act on.
    log::error("command_failed", {{"command", where}, {"error", e.what()}});
    std::cerr << where << ": " << e.what() << "\n";
    return 1;
  }
}

}  // namespace ptypilot
