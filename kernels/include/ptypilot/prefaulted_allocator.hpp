// An allocator that maps its pages when it allocates, not when they are first written.
//
// Storage reserved for a session's expected frames (ReconstructorConfig::expected_frames) is
// first written on the decision path, one sub-sequence at a time. Each first write of a page is
// a page fault, and in a virtual machine (measured on the GPU device machine) the faults of one
// 50-frame sub-sequence cost more than a millisecond of the 2 ms a decision may take. Writing
// one byte a page at allocation moves that cost to construction.
//
// Blocks of 2 MB and more are also asked for as transparent huge pages. The reconstructor reads
// every position's shifted probe (32 kB) and pattern once per iteration, 24 MB at 500 positions,
// and with 4 kB pages those 6,000 pages are more than the TLB holds, so each probe costs eight
// page walks that the reads wait on. Huge pages took the CPU reconstructor from 1.77 to 1.68
// times its FFT floor at 500 patterns, 1.69 to 1.65 at 840 (README, "`ptypilot bench
// reconstruct`"). Where the kernel has no huge pages the advice is ignored, and the pages are the
// small ones, as before.
//
// A resize leaves the new elements as allocated instead of zeroing them: the two vectors that use
// this allocator write every element they add, on the decision path, where zeroing each
// sub-sequence's 50 patterns and probes first (2.4 MB) was a serial memset.
#pragma once

#include <sys/mman.h>

#include <cstddef>
#include <cstdlib>
#include <memory>
#include <new>
#include <type_traits>
#include <utility>

namespace ptypilot {

template <typename T>
struct PrefaultedAllocator {
  using value_type = T;

  PrefaultedAllocator() = default;
  template <typename U>
  PrefaultedAllocator(const PrefaultedAllocator<U>&) noexcept {}

  T* allocate(std::size_t count) {
    const std::size_t size = count * sizeof(T);
    T* p;
    if (huge(size)) {
      const std::size_t whole = (size + kHugePageBytes - 1) / kHugePageBytes * kHugePageBytes;
      p = static_cast<T*>(std::aligned_alloc(kHugePageBytes, whole));
      if (p == nullptr) throw std::bad_alloc();
      madvise(p, whole, MADV_HUGEPAGE);  // advice: its failure leaves small pages, which work
    } else {
      p = std::allocator<T>{}.allocate(count);
    }
    // volatile: a store the compiler may not drop or turn into a calloc.
    volatile char* bytes = reinterpret_cast<volatile char*>(p);
    for (std::size_t at = 0; at < size; at += kPageBytes) bytes[at] = 0;
    return p;
  }
  // For trivially copyable element types (float, std::complex<float>) an element needs no
  // construction to exist; copies, as when the vector grows, are made as usual.
  template <typename U, typename... Args>
  void construct(U* p, Args&&... args) {
    if constexpr (sizeof...(Args) == 0)
      static_assert(std::is_trivially_copyable_v<U> && std::is_trivially_destructible_v<U>,
                    "PrefaultedAllocator leaves elements unconstructed: trivial types only");
    else
      ::new (static_cast<void*>(p)) U(std::forward<Args>(args)...);
  }

  void deallocate(T* p, std::size_t count) noexcept {
    if (huge(count * sizeof(T)))
      std::free(p);
    else
      std::allocator<T>{}.deallocate(p, count);
  }

  friend bool operator==(const PrefaultedAllocator&, const PrefaultedAllocator&) { return true; }

 private:
  static constexpr std::size_t kHugePageBytes = std::size_t(2) << 20;
  static bool huge(std::size_t bytes) { return bytes >= kHugePageBytes; }
  static constexpr std::size_t kPageBytes = 4096;  // the smallest page; larger ones are multiples
};

}  // namespace ptypilot
