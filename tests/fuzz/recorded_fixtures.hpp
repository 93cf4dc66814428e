// Small valid recorded data sets (a 2 x 2 scan of 4 x 4 frames) for fuzz_recorded_dataset: the
// parts of its inputs that the fuzzer does not choose, and its seed corpus (make_seed_corpus).
#pragma once

#include <string>
#include <vector>

namespace ptypilot::fuzz {

// The sidecar's required keys, without the closing brace (callers add keys or close it).
inline const std::string kSidecarStart =
    R"({"energy_keV": 60, "semiangle_mrad": 33, "scan_step_A": 0.2, "detector_pixel_mrad": 4.9,)"
    R"( "defocus_A": 0, "frame_layout": "fft")";

inline std::vector<char> valid_npy() {
  std::string header = "{'descr': '<u2', 'fortran_order': False, 'shape': (2, 2, 4, 4), }";
  header.resize(117, ' ');  // 10 bytes of preamble + 118 = 128, a multiple of 64
  header += '\n';
  std::vector<char> out = {'\x93', 'N', 'U', 'M', 'P', 'Y', 1, 0, char(header.size()), 0};
  out.insert(out.end(), header.begin(), header.end());
  out.resize(out.size() + 2 * 2 * 4 * 4 * 2, 1);
  return out;
}

inline std::vector<char> valid_mib() {
  std::vector<char> out;
  for (int frame = 1; frame <= 4; ++frame) {
    std::string h = "MQ1," + std::to_string(frame) + ",00384,01,0004,0004,U16,1x1,01";
    h.resize(384, ' ');
    out.insert(out.end(), h.begin(), h.end());
    out.resize(out.size() + 4 * 4 * 2, 0);
  }
  return out;
}

// One trigger per scan row: 4 frames in 2 rows of 2.
inline const std::string kValidHdr =
    "HDR,\t\nFrames in Acquisition (Number):\t4\nFrames per Trigger (Number):\t2\n"
    "Counter Depth (number):\t12\nEnd\t\n";

}  // namespace ptypilot::fuzz
