// PrefaultedAllocator: blocks of 2 MB and more start on a 2 MB boundary with huge pages advised;
// smaller ones come from the usual allocator. Both kinds hold what is written to them, and a
// vector that grows across the threshold keeps its elements.
#include <catch2/catch.hpp>

#include <complex>
#include <cstdint>
#include <vector>

#include "ptypilot/prefaulted_allocator.hpp"

namespace ptypilot {

TEST_CASE("prefaulted blocks of 2 MB or more start on a huge page", "[allocator]") {
  constexpr std::size_t kHuge = std::size_t(2) << 20;
  using Probes = std::vector<std::complex<float>, PrefaultedAllocator<std::complex<float>>>;
  // 80 shifted probes of 64 x 64: 2.6 MB, not a whole number of huge pages.
  Probes large(80 * 64 * 64);
  CHECK(reinterpret_cast<std::uintptr_t>(large.data()) % kHuge == 0);
  for (std::size_t k = 0; k < large.size(); ++k) large[k] = {float(k), -float(k)};
  CHECK(large.back() == std::complex<float>(float(large.size() - 1), -float(large.size() - 1)));

  // Growing one probe at a time from small blocks into huge ones keeps every element.
  Probes grown;
  for (std::size_t k = 0; k < 2 * kHuge / sizeof(std::complex<float>); ++k)
    grown.push_back({float(k % 977), 1.0f});
  CHECK(reinterpret_cast<std::uintptr_t>(grown.data()) % kHuge == 0);
  std::size_t wrong = 0;
  for (std::size_t k = 0; k < grown.size(); ++k) wrong += grown[k] != std::complex<float>(float(k % 977), 1.0f);
  CHECK(wrong == 0);

  std::vector<float, PrefaultedAllocator<float>> small(1000, 2.5f);
  CHECK(small[999] == 2.5f);
}

}  // namespace ptypilot
