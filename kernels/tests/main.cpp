// The Catch2 main of ptypilot_kernels_tests: the kernels' own tests, which build with kernels/
// alone. Tags: [cuda_bodies] (the CUDA kernels' bodies on the host), [reward][jfa] (Jump
// Flooding emulated on the host), [cuda] (the GPU against the CPU; each skips with a warning
// that names the reason where there is no device).
#define CATCH_CONFIG_MAIN
#include <catch2/catch.hpp>
