// The Catch2 main of ptypilot_tests. Tests are tagged by component: [optics], [reconstructor],
// [metrics], [specimen], [proto], and [slow] for the few that take seconds.
#define CATCH_CONFIG_MAIN
#include <catch2/catch.hpp>
