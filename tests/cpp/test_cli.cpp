#include <catch2/catch.hpp>

#include "ptypilot/wire/cli_args.hpp"

using ptypilot::CliArgs;

TEST_CASE("command-line options parse, and typos are errors", "[daemon]") {
  const CliArgs args({"--patterns", "500", "--dose=1e5", "--verbose"}, {"patterns", "dose"}, {"verbose"});
  CHECK(args.get_int("patterns", 0) == 500);
  CHECK(args.get_double("dose", 0) == 1e5);
  CHECK(args.has("verbose"));
  CHECK(args.get("missing", "fallback") == "fallback");
  CHECK_THROWS_WITH(CliArgs({"--patern", "5"}, {"patterns"}), Catch::Contains("unknown option --patern"));
  CHECK_THROWS_WITH(CliArgs({"--patterns"}, {"patterns"}), Catch::Contains("needs a value"));
  CHECK_THROWS_WITH(CliArgs({"stray"}, {"patterns"}), Catch::Contains("unexpected argument"));
  CHECK_THROWS_WITH(CliArgs({"--patterns", "5x"}, {"patterns"}).get_int("patterns", 0),
                    Catch::Contains("expects an integer"));
  CHECK_THROWS_WITH(CliArgs({"--dose", ""}, {"dose"}).get_double("dose", 0),
                    Catch::Contains("expects a number"));
}
