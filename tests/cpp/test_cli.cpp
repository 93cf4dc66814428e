#include <catch2/catch.hpp>

#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>

#include "ptypilot/core/config.hpp"
#include "ptypilot/wire/cli_args.hpp"
#include "commands.hpp"
#include "ptypilot/wire/command.hpp"

using ptypilot::CliArgs;
using ptypilot::Command;
using ptypilot::OptionSpec;
using ptypilot::UsageError;

namespace {

const std::vector<OptionSpec> kTable = {{"patterns", "N", "500", "patterns"},
                                        {"dose", "E", "", "dose"},
                                        {"verbose", "", "", "a flag"}};

// What run_command_line printed, and its exit code. Only for commands that return at once.
struct Ran {
  int code;
  std::string out, err;
};

Ran run(const std::vector<std::string>& args) {
  std::ostringstream out, err;
  auto* old_out = std::cout.rdbuf(out.rdbuf());
  auto* old_err = std::cerr.rdbuf(err.rdbuf());
  const int code = ptypilot::run_command_line(ptypilot::ptypilot_program(), args);
  std::cout.rdbuf(old_out);
  std::cerr.rdbuf(old_err);
  return {code, out.str(), err.str()};
}

}  // namespace

TEST_CASE("command-line options parse, and typos are errors", "[daemon]") {
  const CliArgs args({"--patterns", "400", "--dose=1e5", "--verbose"}, kTable);
  CHECK(args.get_int("patterns") == 400);
  CHECK(args.get_double("dose") == 1e5);
  CHECK(args.has("verbose"));
  CHECK_FALSE(args.help_requested());
  CHECK(args.get("dose", "fallback") == "1e5");

  const CliArgs none({}, kTable);
  CHECK(none.get_int("patterns") == 500);  // the table's default
  CHECK_FALSE(none.has("patterns"));
  CHECK(none.get("dose", "fallback") == "fallback");
  CHECK_THROWS_AS(none.get_double("dose"), std::logic_error);  // no default: the caller checks has()
  CHECK_THROWS_AS(none.get("not-in-the-table"), std::logic_error);

  CHECK_THROWS_AS(CliArgs({"--patern", "5"}, kTable), UsageError);
  CHECK_THROWS_WITH(CliArgs({"--patern", "5"}, kTable), Catch::Contains("unknown option --patern"));
  CHECK_THROWS_WITH(CliArgs({"--patterns"}, kTable), Catch::Contains("needs a value"));
  CHECK_THROWS_WITH(CliArgs({"--verbose=1"}, kTable), Catch::Contains("takes no value"));
  CHECK_THROWS_WITH(CliArgs({"stray"}, kTable), Catch::Contains("unexpected argument"));
  CHECK_THROWS_AS(CliArgs({"--patterns", "5x"}, kTable).get_int("patterns"), UsageError);
  CHECK_THROWS_WITH(CliArgs({"--patterns", "5x"}, kTable).get_int("patterns"),
                    Catch::Contains("--patterns expects an integer"));
  CHECK_THROWS_WITH(CliArgs({"--dose", ""}, kTable).get_double("dose"), Catch::Contains("expects a number"));

  // --help stops parsing, so that a wrong line can still ask for help.
  CHECK(CliArgs({"--patterns", "1", "--help", "--nonsense"}, kTable).help_requested());
  CHECK(CliArgs({"-h"}, kTable).help_requested());
}

TEST_CASE("positional arguments and a group's leading options", "[daemon]") {
  const std::vector<ptypilot::PositionalSpec> positionals = {
      {.name = "FILE"}, {.name = "SECONDS", .required = false, .fallback = "60"}};
  const CliArgs one({"a.json", "--verbose"}, kTable, positionals);
  CHECK(one.get("FILE") == "a.json");
  CHECK(one.get_double("SECONDS") == 60);
  CHECK(CliArgs({"a.json", "5"}, kTable, positionals).get_double("SECONDS") == 5);
  CHECK_THROWS_WITH(CliArgs({}, kTable, positionals), Catch::Contains("missing FILE"));
  CHECK_THROWS_WITH(CliArgs({"a", "1", "b"}, kTable, positionals), Catch::Contains("unexpected argument 'b'"));
  CHECK_THROWS_WITH(CliArgs({"a", "x"}, kTable, positionals).get_double("SECONDS"),
                    Catch::Contains("SECONDS expects a number"));

  const CliArgs leading = CliArgs::leading({"--patterns", "3", "status", "--dose", "1"}, kTable);
  CHECK(leading.get_int("patterns") == 3);
  CHECK(leading.rest() == std::vector<std::string>{"status", "--dose", "1"});
}

TEST_CASE("every command and subcommand has a summary and a --help from its table", "[daemon]") {
  std::set<std::string> names;
  for (const Command& command : ptypilot::commands()) {
    INFO(command.name);
    CHECK(names.insert(command.name).second);
    CHECK_FALSE(command.summary.empty());
    CHECK((command.run || command.run_unparsed || !command.subcommands.empty()));
    for (const Command& sub : command.subcommands) {
      INFO(sub.name);
      CHECK_FALSE(sub.summary.empty());
      CHECK(sub.run);
      const std::string path = command.name + " " + sub.name;
      const std::string help = ptypilot::command_help(sub, "ptypilot " + path, command.options);
      CHECK_THAT(help, Catch::StartsWith("usage: ptypilot " + path));
      for (const OptionSpec& o : sub.options) CHECK_THAT(help, Catch::Contains("--" + o.name));
      for (const OptionSpec& o : command.options) CHECK_THAT(help, Catch::Contains("--" + o.name));
    }
  }
  for (const char* name :
       {"serve", "sim-detector", "replay", "ctl", "config", "counters", "demo", "eval", "report",
        "bench", "version"})
    CHECK(names.count(name) == 1);
}

TEST_CASE("the command line: help, unknown commands and options, exit codes", "[daemon]") {
  Ran r = run({"--help"});
  CHECK(r.code == 0);
  CHECK_THAT(r.out, Catch::StartsWith("usage: ptypilot"));
  for (const Command& command : ptypilot::commands())
    CHECK_THAT(r.out, Catch::Contains("\n  " + command.name + " "));

  r = run({"bench", "reconstruct", "--help"});
  CHECK(r.code == 0);
  CHECK_THAT(r.out, Catch::StartsWith("usage: ptypilot bench reconstruct [options]"));
  CHECK_THAT(r.out, Catch::Contains("--patterns N") && Catch::Contains("(default: 500)"));

  r = run({"help", "ctl", "wait"});
  CHECK(r.code == 0);
  CHECK_THAT(r.out, Catch::StartsWith("usage: ptypilot ctl wait [options] [SECONDS]"));
  CHECK_THAT(r.out, Catch::Contains("--endpoint EP"));  // the group's options apply

  r = run({"bench", "--help"});
  CHECK(r.code == 0);
  CHECK_THAT(r.out, Catch::Contains("\n  reconstruct ") && Catch::Contains("\n  ingest "));

  r = run({"bench", "reconstruct", "--patern", "5"});
  CHECK(r.code == 2);
  CHECK_THAT(r.err, Catch::Contains("ptypilot bench reconstruct: unknown option --patern"));

  r = run({"ctl", "--timeout-s", "1", "configure"});
  CHECK(r.code == 2);
  CHECK_THAT(r.err, Catch::Contains("ptypilot ctl configure: missing FILE"));

  r = run({"bench"});
  CHECK(r.code == 2);
  CHECK_THAT(r.err, Catch::Contains("usage: ptypilot bench"));

  r = run({"bench", "nonsense"});
  CHECK(r.code == 2);
  CHECK_THAT(r.err, Catch::Contains("unknown command 'nonsense'"));

  CHECK(run({"nonsense"}).code == 2);
  CHECK(run({}).code == 2);

  r = run({"version"});
  CHECK(r.code == 0);
  CHECK_THAT(r.out, Catch::StartsWith("ptypilot "));
}

TEST_CASE("ptypilot config: reference, defaults that parse back, check with the key path",
          "[daemon][config]") {
  Ran r = run({"config", "reference"});
  CHECK(r.code == 0);
  CHECK(r.out == ptypilot::serve_config_reference());

  // defaults: the mos2-paper preset filled in (a config without a raster is refused), and what it
  // prints is a config that parses to the same thing.
  r = run({"config", "defaults"});
  REQUIRE(r.code == 0);
  const nlohmann::json defaults = nlohmann::json::parse(r.out);
  CHECK(defaults["session"]["preset"] == "mos2-paper");
  CHECK(defaults["session"]["raster"]["rows"] == 100);
  CHECK(ptypilot::parse_serve_config(defaults).to_json() == defaults);

  const auto dir = std::filesystem::temp_directory_path() /
                   ("ptypilot_config_check_" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  const auto good = dir / "good.json", bad = dir / "bad.json";
  std::ofstream(good) << "// a comment\n{\"session\": {\"preset\": \"mos2-paper\"}}";
  std::ofstream(bad) << "{\"session\": {\"preset\": \"mos2-paper\", \"total_positons\": 5}}";
  r = run({"config", "check", good.string()});
  CHECK(r.code == 0);
  CHECK(nlohmann::json::parse(r.out) == defaults);
  r = run({"config", "check", bad.string()});
  CHECK(r.code == 1);
  CHECK(r.out.empty());
  CHECK_THAT(r.err, Catch::Contains(bad.string() + ": config.session.total_positons: unknown key"));
  CHECK(run({"config", "check"}).code == 2);
  std::filesystem::remove_all(dir);
}
