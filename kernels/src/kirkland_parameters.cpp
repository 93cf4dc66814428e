// Kirkland's electron scattering factor fit for the elements our specimens use.
//
// Source: E. J. Kirkland, "Advanced Computing in Electron Microscopy", 2nd ed., Springer 2010,
// Appendix C (file fparams.dat), as hard-coded by the author in ReadfeTable() of slicelib.cpp
// in his computem/TEMSIM programs (copies on GitHub, e.g. CY-Zhang/MultisliceCPP and
// jhuang97/magnetic-temsim-public). Cross-checked digit for digit against the independent
// transcription "feKirkland.txt" in G. Duscher's KinsCat (pyTEMlib). Only the numbers are
// taken; slicelib's layout per element is a1 b1 a2 b2 a3 b3 c1 d1 c2 d2 c3 d3, regrouped here.
#include <stdexcept>
#include <string>

#include "ptypilot/specimen.hpp"

namespace ptypilot::sim {
namespace {

struct Entry {
  int Z;
  KirklandParameters p;
};

// Only the elements the specimens need plus common contaminants (H, N, O); adding an element
// is a matter of copying its 12 numbers from the same table.
constexpr Entry kTable[] = {
    {1,  // H, chisq 0.170190
     {{4.20298324e-003, 6.27762505e-002, 3.00907347e-002},
      {2.25350888e-001, 2.25366950e-001, 2.25331756e-001},
      {6.77756695e-002, 3.56609237e-003, 2.76135815e-002},
      {4.38854001e+000, 4.03884823e-001, 1.44490166e+000}}},
    {6,  // C, chisq 0.102440
     {{2.12080767e-001, 1.99811865e-001, 1.68254385e-001},
      {2.08605417e-001, 2.08610186e-001, 5.57870773e+000},
      {1.42048360e-001, 3.63830672e-001, 8.35012044e-004},
      {1.33311887e+000, 3.80800263e+000, 4.03982620e-002}}},
    {7,  // N, chisq 0.060249
     {{5.33015554e-001, 5.29008883e-002, 9.24159648e-002},
      {2.90952515e-001, 1.03547896e+001, 1.03540028e+001},
      {2.61799101e-001, 8.80262108e-004, 1.10166555e-001},
      {2.76252723e+000, 3.47681236e-002, 9.93421736e-001}}},
    {8,  // O, chisq 0.039944
     {{3.39969204e-001, 3.07570172e-001, 1.30369072e-001},
      {3.81570280e-001, 3.81571436e-001, 1.91919745e+001},
      {8.83326058e-002, 1.96586700e-001, 9.96220028e-004},
      {7.60635525e-001, 2.07401094e+000, 3.03266869e-002}}},
    {16,  // S, chisq 0.033482
     {{1.01646916e+000, 4.41766748e-001, 1.21503863e-001},
      {1.69181965e+000, 1.74180288e-001, 1.67011091e+002},
      {8.27966670e-001, 2.33022533e-002, 1.18302846e+000},
      {2.30342810e+000, 1.56954150e-001, 5.85782891e+000}}},
    {42,  // Mo, chisq 0.008976
     {{6.10160120e-001, 1.26544000e+000, 1.97428762e+000},
      {9.11628054e-002, 5.06776025e-001, 5.89590381e+000},
      {6.48028962e-001, 2.60380817e-003, 1.13887493e-001},
      {1.46634108e+000, 7.84336311e-003, 1.55114340e-001}}},
    {79,  // Au, chisq 0.003143; slicelib's fparams[79], equal digit for digit in pyTEMlib
     {{9.61263398e-001, 3.69581030e+000, 2.77567491e+000},
      {1.70932277e-001, 1.29335319e+001, 6.89997070e-001},
      {2.95414176e-001, 3.11475743e-001, 1.43237267e-002},
      {1.63525510e-001, 1.39200901e+000, 2.71265337e-002}}},
};

}  // namespace

const KirklandParameters& kirkland_parameters(int Z) {
  for (const Entry& entry : kTable) {
    if (entry.Z == Z) return entry.p;
  }
  std::string known;
  for (const Entry& entry : kTable) known += (known.empty() ? "" : ", ") + std::to_string(entry.Z);
  throw std::invalid_argument("no Kirkland scattering parameters for Z=" + std::to_string(Z) +
                              " (available: " + known + ")");
}

}  // namespace ptypilot::sim
