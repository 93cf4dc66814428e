# CUDA for the kernels, shared by the project's root CMakeLists.txt and by kernels/ built on its
# own. CUDA is on where nvcc exists and off elsewhere; -DPTYPILOT_CUDA=OFF forces the CPU-only
# build and ON makes a missing nvcc an error. Sets PTYPILOT_WITH_CUDA.
#
# Architectures, unless given: sm_80 (A100) and sm_90 (H100, H200) machine code, plus compute_90
# PTX that the driver compiles for later GPUs. nvcc 13 has dropped everything below sm_75.
set(PTYPILOT_CUDA AUTO CACHE STRING "Build the CUDA reconstructor and reward: AUTO, ON or OFF")
set(PTYPILOT_WITH_CUDA OFF)
if(NOT PTYPILOT_CUDA STREQUAL "OFF")
  if(NOT CMAKE_CUDA_COMPILER AND NOT DEFINED ENV{CUDACXX} AND EXISTS /usr/local/cuda/bin/nvcc)
    set(CMAKE_CUDA_COMPILER /usr/local/cuda/bin/nvcc)
  endif()
  include(CheckLanguage)
  check_language(CUDA)
  if(CMAKE_CUDA_COMPILER)
    if(NOT DEFINED CMAKE_CUDA_ARCHITECTURES)
      set(CMAKE_CUDA_ARCHITECTURES 80-real 90)
    endif()
    enable_language(CUDA)
    # The .cu files need no more than C++17, which CMake 3.25 knows how to ask nvcc 13 for.
    set(CMAKE_CUDA_STANDARD 17)
    set(CMAKE_CUDA_STANDARD_REQUIRED ON)
    # The shared runtime, like cuFFT, which has no static library in every CUDA install.
    set(CMAKE_CUDA_RUNTIME_LIBRARY Shared)
    find_package(CUDAToolkit REQUIRED)
    set(PTYPILOT_WITH_CUDA ON)
  elseif(PTYPILOT_CUDA STREQUAL "ON")
    message(FATAL_ERROR "PTYPILOT_CUDA=ON but no CUDA compiler was found")
  endif()
endif()
if(PTYPILOT_WITH_CUDA)
  message(STATUS "ptypilot: CUDA ${CMAKE_CUDA_COMPILER_VERSION} (${CMAKE_CUDA_COMPILER}), "
                 "architectures ${CMAKE_CUDA_ARCHITECTURES}: CudaReconstructor and the Jump "
                 "Flooding reward are built; backend 'auto' uses CUDA where a device is present")
else()
  message(STATUS "ptypilot: no CUDA compiler; CPU build (backend 'auto' uses the CPU)")
endif()
