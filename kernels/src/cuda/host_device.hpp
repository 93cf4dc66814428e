// PTYPILOT_HD marks the kernel bodies that run on the GPU (nvcc) and, in the tests, on the host
// (any C++ compiler), so that both run the same code.
#pragma once

#if defined(__CUDACC__)
#define PTYPILOT_HD __host__ __device__ inline
#else
#define PTYPILOT_HD inline
#endif
