// `ptypilot counters`: every health counter that `ctl status` may show, what it means and which
// part of the daemon counts it, from the registry (ptypilot/wire/counters.hpp). The README's
// table under "Bad input" is this output.
#include <iostream>

#include "ptypilot/wire/command.hpp"
#include "ptypilot/wire/counters.hpp"

namespace ptypilot {

Command counters_command() {
  return {.name = "counters",
          .summary = "every health counter of `ctl status`: meaning, counting part (Markdown)",
          .description =
              "Every health counter that `ptypilot ctl status` may show, with what it means and "
              "the part of the daemon that counts it, as a Markdown table (the README's is this "
              "output). A counter is in the status from the first time its part counts it, and "
              "each is a total since the daemon started.",
          .run = [](const CliArgs&) {
            std::cout << counters::reference();
            return 0;
          }};
}

}  // namespace ptypilot
