// An allocator that maps its pages when it allocates, not when they are first written.
//
// Storage reserved for a session's expected frames (ReconstructorConfig::expected_frames) is
// first written on the decision path, one sub-sequence at a time. Each first write of a page is
// a page fault, and in a virtual machine (measured on the GPU device machine) the faults of one
// 50-frame sub-sequence cost more than a millisecond of the 2 ms a decision may take. Writing
// one byte a page at allocation moves that cost to construction.
#pragma once

#include <cstddef>
#include <memory>

namespace ptypilot {

template <typename T>
struct PrefaultedAllocator {
  using value_type = T;

  PrefaultedAllocator() = default;
  template <typename U>
  PrefaultedAllocator(const PrefaultedAllocator<U>&) noexcept {}

  T* allocate(std::size_t count) {
    T* p = std::allocator<T>{}.allocate(count);
    // volatile: a store the compiler may not drop or turn into a calloc.
    volatile char* bytes = reinterpret_cast<volatile char*>(p);
    const std::size_t size = count * sizeof(T);
    for (std::size_t at = 0; at < size; at += kPageBytes) bytes[at] = 0;
    return p;
  }
  void deallocate(T* p, std::size_t count) noexcept { std::allocator<T>{}.deallocate(p, count); }

  friend bool operator==(const PrefaultedAllocator&, const PrefaultedAllocator&) { return true; }

 private:
  static constexpr std::size_t kPageBytes = 4096;  // the smallest page; larger ones are multiples
};

}  // namespace ptypilot
