// The per-pixel bodies of the Jump Flooding kernels (jfa_kernels.cu), as __host__ __device__
// functions that a host test runs over the same index space (kernels/tests/test_jfa.cpp).
//
// Jump Flooding (Rong & Tan 2006): every pixel holds the index of the nearest seed it knows;
// in a pass of step k it looks at the seeds held by itself and the 8 pixels k away and keeps the
// nearest. Passes of k = 2^m, ..., 2, 1 spread every seed across its cell in log2(size) passes,
// with errors where a cell is reached only through pixels that another seed took first (an
// exact tie on the way is enough). One round of passes left 0.6 % of the pixels wrong, up to
// 10 px too far, for six seeds on the FOV's edges; a second round, started from the first's
// labels, corrects nearly all of that (jfa_schedule; kernels/tests/test_jfa.cpp measures it).
//
// Distances and ties are those of the exact CPU labels (reward.hpp): d2 = dy * dy + dx * dx in
// double without fused multiply-add, ties to the lowest index. So where Jump Flooding has found
// the right seed, the label is bit for bit the CPU's, ties included.
//
// Seeds are placed on pixels by place_jfa_seeds (jfa_seeding.hpp), which moves a seed whose
// pixel another seed already holds to a free pixel next to it, rather than lose it.
#pragma once

#include "host_device.hpp"

namespace ptypilot::gpu {

// A seed's object point in Angstrom: its scan position plus the FOV origin.
struct SeedPoint {
  double y;
  double x;
};

// Products and sums rounded as written: nvcc would otherwise fuse a * b - c into one
// multiply-add and round differently from the CPU reference, which breaks exact ties.
PTYPILOT_HD double mul_rn(double a, double b) {
#if defined(__CUDA_ARCH__)
  return __dmul_rn(a, b);
#else
  return a * b;
#endif
}

PTYPILOT_HD double add_rn(double a, double b) {
#if defined(__CUDA_ARCH__)
  return __dadd_rn(a, b);
#else
  return a + b;
#endif
}

PTYPILOT_HD double seed_distance2(double py, double px, const SeedPoint& s) {
  const double dy = add_rn(py, -s.y);
  const double dx = add_rn(px, -s.x);
  return add_rn(mul_rn(dy, dy), mul_rn(dx, dx));
}

// One pass over the labelled rectangle: rows x cols pixels starting at object pixel
// (row0, col0). Labels are seed indices, -1 for none yet.
struct JfaPass {
  const SeedPoint* seeds;
  const int* labels_in;
  int* labels_out;
  int rows;
  int cols;
  int row0;
  int col0;
  double pixel_A;
  int step;
};

PTYPILOT_HD int jfa_label_at(const JfaPass& p, int pixel) {
  const int r = pixel / p.cols;
  const int c = pixel - r * p.cols;
  const double py = mul_rn(double(p.row0 + r), p.pixel_A);
  const double px = mul_rn(double(p.col0 + c), p.pixel_A);
  int best = -1;
  double best_d2 = 0.0;
  for (int dy = -1; dy <= 1; ++dy) {
    const int rr = r + dy * p.step;
    if (rr < 0 || rr >= p.rows) continue;
    for (int dx = -1; dx <= 1; ++dx) {
      const int cc = c + dx * p.step;
      if (cc < 0 || cc >= p.cols) continue;
      const int m = p.labels_in[rr * p.cols + cc];
      if (m < 0) continue;
      const double d2 = seed_distance2(py, px, p.seeds[m]);
      if (best < 0 || d2 < best_d2 || (d2 == best_d2 && m < best)) {
        best = m;
        best_d2 = d2;
      }
    }
  }
  return best;
}

// The phase of a labelled rectangle pixel and the seed it is credited to (-1: none).
struct RewardTerm {
  int seed;
  float phase;
};

PTYPILOT_HD RewardTerm reward_term_at(const int* labels, int cols, int row0, int col0,
                                      const float* phase, int phase_cols, int pixel) {
  const int r = pixel / cols;
  const int c = pixel - r * cols;
  return {labels[pixel], phase[long(row0 + r) * phase_cols + col0 + c]};
}

}  // namespace ptypilot::gpu
