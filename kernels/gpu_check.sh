#!/usr/bin/env bash
# The GPU check of issue 5, for a machine with a GPU, nvcc and CMake but no package registry
# (the device machines of /work/.library/device): build kernels/ on its own, run its tests
# (the [cuda] ones among them) and its benchmark, and leave JSON results in $OUT.
#
#   kernels/gpu_check.sh fetch     here, where apt works: download the four carried .debs into
#                                  .debs/ (FFTW's library, single and double, and headers;
#                                  Catch2 v2), about 4 MB; .debs/ is git-ignored
#   kernels/gpu_check.sh run       there, from the repository root, with .debs carried:
#                                  run(command="kernels/gpu_check.sh run", carry=[".debs"],
#                                      timeout_s=540)
#
# The packages are unpacked with dpkg -x into /tmp/ptypilot-debs, never into /, and found from
# there (-DPTYPILOT_FFTW_ROOT, -DCMAKE_PREFIX_PATH). It writes at most 8 files into $OUT:
# gpu_check.json (the summary), environment.txt, build.log, tests.xml (Catch2 JUnit), tests.txt,
# bench.json (one object per benchmark run), sanitizer.txt (compute-sanitizer's memcheck and
# racecheck on a short benchmark run, where the tool is there). PTYPILOT_CUDA_ARCHITECTURES
# (for example 90) builds for fewer architectures than the default, to save device time. Every step has its own time limit, so that the
# whole run stays under 9 minutes even where a step hangs; about 2-3 minutes is expected.
#
# `ptypilot bench loop --backend cuda` needs the whole daemon (ZeroMQ, protobuf, HDF5, LibTorch),
# which such a machine does not have; the kernel benchmark's "session" part times what the GPU
# changes in that loop: add_frames of each sub-sequence, 5 iterations, and the snapshot.
set -uo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
debs="$root/.debs"
packages=(libfftw3-dev libfftw3-single3 libfftw3-double3 catch2)

fetch() {
  mkdir -p "$debs"
  (cd "$debs" && apt-get download "${packages[@]}")
  ls -l "$debs"
}

run() {
  local out=${OUT:-$root/out/gpu-check}
  mkdir -p "$out"
  local prefix=/tmp/ptypilot-debs build=/tmp/ptypilot-build-kernels
  local status_build=skipped status_tests=skipped summary_error=""
  local start=$SECONDS

  {
    echo "date: $(date -u +%FT%TZ)"
    echo "host: $(uname -a)"
    nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv 2>&1
    command -v nvcc >/dev/null && nvcc --version | tail -2
    [[ -x /usr/local/cuda/bin/nvcc ]] && /usr/local/cuda/bin/nvcc --version | tail -2
    cmake --version | head -1
    c++ --version | head -1
    nproc
  } >"$out/environment.txt" 2>&1

  mkdir -p "$prefix"
  local deb
  for deb in "$debs"/*.deb; do
    [[ -e $deb ]] || { summary_error="no .deb files in $debs (run 'fetch' where apt works, carry .debs)"; break; }
    dpkg -x "$deb" "$prefix"
  done
  export LD_LIBRARY_PATH="$prefix/usr/lib/x86_64-linux-gnu${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
  # As `ptypilot` does: OpenMP threads that spin at barriers slow the CPU reference down.
  export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-PASSIVE}

  if [[ -z $summary_error ]]; then
    if timeout 300 cmake -S "$root/kernels" -B "$build" -DCMAKE_BUILD_TYPE=Release \
          -DPTYPILOT_CUDA=ON -DPTYPILOT_FFTW_ROOT="$prefix/usr" \
          ${PTYPILOT_CUDA_ARCHITECTURES:+-DCMAKE_CUDA_ARCHITECTURES=$PTYPILOT_CUDA_ARCHITECTURES} \
          -DCMAKE_PREFIX_PATH="$prefix/usr" >"$out/build.log" 2>&1 &&
       timeout 300 cmake --build "$build" -j "$(nproc)" >>"$out/build.log" 2>&1; then
      status_build=ok
    else
      status_build=failed
      summary_error="the build failed; see build.log"
    fi
  fi

  if [[ $status_build == ok ]]; then
    # All the kernels' tests: the [cuda] ones run on the GPU here; the others are quick.
    timeout 240 "$build/tests/ptypilot_kernels_tests" -r junit -o "$out/tests.xml" >/dev/null 2>&1
    local rc=$?
    # The [cuda] cases report the differences they measured as warnings.
    timeout 240 "$build/tests/ptypilot_kernels_tests" "[cuda]" >"$out/tests.txt" 2>&1
    [[ $rc == 0 ]] && status_tests=passed || status_tests="failed (exit $rc)"
    grep -q "test skipped" "$out/tests.txt" && status_tests="$status_tests; [cuda] tests skipped"

    local bench="$build/bench/ptypilot_kernels_bench" first=1 args
    echo "[" >"$out/bench.json"
    # --sessions 10: the session update's p99 over 100 updates rather than 10.
    for args in "--backend cuda --patterns 250 --iterations 50 --sessions 10" \
                "--backend cuda --patterns 500 --iterations 50 --sessions 10" \
                "--backend cuda --patterns 840 --iterations 50 --sessions 10" \
                "--backend cuda --patterns 500 --iterations 50 --loss amplitude --sessions 10" \
                "--backend cuda --patterns 5000 --iterations 20 --sessions 10" \
                "--backend cpu --patterns 500 --iterations 10 --sessions 3"; do
      ((first)) || echo "," >>"$out/bench.json"
      first=0
      # shellcheck disable=SC2086
      if ! timeout 120 "$bench" $args >>"$out/bench.json" 2>"$out/bench-error.txt"; then
        printf '{"args": "%s", "error": "%s"}' "$args" \
          "$(tr '"\n' "' " <"$out/bench-error.txt")" >>"$out/bench.json"
      fi
    done
    echo "]" >>"$out/bench.json"
    rm -f "$out/bench-error.txt"

    # Bad device memory accesses and shared-memory races in every kernel the benchmark runs
    # (reconstructor with its graph, the session updates, Jump Flooding), on a small problem.
    local sanitizer
    sanitizer=$(command -v compute-sanitizer || echo /usr/local/cuda/bin/compute-sanitizer)
    if [[ -x $sanitizer ]]; then
      local tool small="--backend cuda --patterns 40 --iterations 3 --warmup 1 --session-positions 100 --reward-repeats 1"
      for tool in memcheck racecheck; do
        echo "== $tool" >>"$out/sanitizer.txt"
        # shellcheck disable=SC2086
        timeout 90 "$sanitizer" --tool "$tool" --error-exitcode 3 "$bench" $small \
          >>"$out/sanitizer.txt" 2>&1
        echo "== $tool exit $?" >>"$out/sanitizer.txt"
      done
    else
      echo "compute-sanitizer not found" >"$out/sanitizer.txt"
    fi
  fi

  printf '{\n  "build": "%s",\n  "tests": "%s",\n  "error": "%s",\n  "seconds": %d,\n  "gpu": "%s"\n}\n' \
    "$status_build" "$status_tests" "$summary_error" $((SECONDS - start)) \
    "$(nvidia-smi --query-gpu=name --format=csv,noheader 2>/dev/null | head -1)" \
    >"$out/gpu_check.json"
  cat "$out/gpu_check.json"
  [[ $status_build == ok && $status_tests == passed ]]
}

case "${1:-}" in
  fetch) fetch ;;
  run) run ;;
  *) sed -n '2,20p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 2 ;;
esac
