// The Catch2 main of the kernels' own tests, which build with kernels/ alone.
// ptypilot_kernels_tests: [cuda_bodies] (the CUDA kernels' bodies on the host), [reward][jfa]
// (Jump Flooding emulated on the host), [cuda] (the GPU against the CPU; each skips with a
// warning that names the reason where there is no device).
// ptypilot_kernels_host_device_tests: [host_device] and [cuda], CudaReconstructor and the Jump
// Flooding reward on the host stand-in for the CUDA runtime (host_device/host_device.hpp).
#define CATCH_CONFIG_MAIN
#include <catch2/catch.hpp>
