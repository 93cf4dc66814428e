#!/usr/bin/env bash
# The daemon's own benchmarks on a GPU machine that cannot build the daemon (no ZeroMQ,
# protobuf or HDF5 there, and no package registry): the device machines of /work/.library/device,
# with 16 cores and a GPU. What they measure that the 2-core CI machine cannot:
#   - `bench loop --backend cuda`: the decision latency with the CUDA reconstructor, in the real
#     loop (the GPU check, kernels/gpu_check.sh, times only the reconstructor's part);
#   - `bench loop --viewers 10`: what the live page adds to p99 decision latency when there are
#     cores to spare, which on 2 cores is lost in the machine's own noise;
#   - `bench ingest` and `bench reconstruct` where cores allow.
#
#   deploy/device_bench.sh bundle [BUILD]   here: pack BUILD/bin/ptypilot and ptypilot-sim
#                                           (BUILD: build/) with the shared libraries they load,
#                                           but the C library's and CUDA's, which that machine
#                                           has, into .device-bundle/ptypilot.tar.gz (git-ignored)
#   deploy/device_bench.sh run              there, from the repository root:
#                                           run(command="deploy/device_bench.sh run",
#                                               carry=[".device-bundle"], timeout_s=540)
#
# The bundle is unpacked into /tmp/ptypilot-bundle, never into /. The run writes into $OUT:
# device_bench.json (one object per benchmark, or its error), environment.txt and bench.log (each
# benchmark's stderr, under its name). Every benchmark has its own time limit, so that the whole run
# stays under 9 minutes even where one hangs; about 5 minutes is expected.
set -uo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# PTYPILOT_DEVICE_BUNDLE: another folder for the bundle (the tests use one of their own).
bundle_dir=${PTYPILOT_DEVICE_BUNDLE:-$root/.device-bundle}

# The libraries that machine has itself: the C library's parts and the dynamic loader, and
# CUDA's runtime and cuFFT, which must match its driver.
system_library='/(libc|libm|libpthread|libdl|librt|libresolv|ld-linux-x86-64)\.so|libcudart\.so|libcufft\.so|libcuda\.so'

bundle() {
  local build=${1:-$root/build}
  local program
  for program in ptypilot ptypilot-sim; do
    [[ -x $build/bin/$program ]] || { echo "device_bench: no $build/bin/$program; build first (deploy/run build)" >&2; return 1; }
  done
  local staging
  staging=$(mktemp -d)
  mkdir -p "$staging/bin" "$staging/lib"
  cp "$build/bin/ptypilot" "$build/bin/ptypilot-sim" "$staging/bin/"
  local missing
  missing=$(ldd "$build/bin/ptypilot" "$build/bin/ptypilot-sim" | grep "not found")
  if [[ -n $missing ]]; then
    echo "device_bench: libraries not found here: $missing" >&2
    rm -rf "$staging"
    return 1
  fi
  ldd "$build/bin/ptypilot" "$build/bin/ptypilot-sim" | awk '/=> \// {print $3}' | sort -u |
    grep -v -E "$system_library" | while read -r library; do cp -L "$library" "$staging/lib/"; done
  mkdir -p "$bundle_dir"
  tar -C "$staging" -czf "$bundle_dir/ptypilot.tar.gz" bin lib
  rm -rf "$staging"
  ls -l "$bundle_dir/ptypilot.tar.gz"
  echo "device_bench: $(tar -tzf "$bundle_dir/ptypilot.tar.gz" | grep -c '^lib/.') libraries bundled"
}

run() {
  local out=${OUT:-$root/out/device-bench}
  mkdir -p "$out"
  local unpacked=/tmp/ptypilot-bundle
  local start=$SECONDS
  {
    echo "date: $(date -u +%FT%TZ)"
    echo "host: $(uname -a)"
    nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv 2>&1
    ldd --version 2>&1 | head -1
    echo "cores: $(nproc)"
  } >"$out/environment.txt" 2>&1

  rm -rf "$unpacked" && mkdir -p "$unpacked"
  if ! tar -C "$unpacked" -xzf "$bundle_dir/ptypilot.tar.gz" 2>>"$out/environment.txt"; then
    printf '[{"error": "no bundle in %s (run deploy/device_bench.sh bundle here, carry .device-bundle)"}]\n' \
      "$bundle_dir" | tee "$out/device_bench.json"
    return 1
  fi
  local cuda_lib
  for cuda_lib in /usr/local/cuda/lib64 /usr/local/cuda/lib /usr/local/cuda/targets/x86_64-linux/lib; do
    [[ -d $cuda_lib ]] && LD_LIBRARY_PATH="${LD_LIBRARY_PATH:+$LD_LIBRARY_PATH:}$cuda_lib"
  done
  export LD_LIBRARY_PATH="$unpacked/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
  local ptypilot="$unpacked/bin/ptypilot"
  # What the loader cannot find there (an older C library, a missing CUDA library) is named here.
  ldd "$ptypilot" >>"$out/environment.txt" 2>&1

  local first=1 name args
  echo "[" >"$out/device_bench.json"
  # name|limit in seconds|arguments. The reconstructor first: a quick proof that the GPU works.
  local benches=(
    "reconstruct-cuda-500|60|bench reconstruct --backend cuda --patterns 500 --iterations 50"
    "reconstruct-cpu-500|60|bench reconstruct --backend cpu --patterns 500 --iterations 30"
    "loop-cuda|120|bench loop --backend cuda --positions 550 --subsequence 50 --sessions 10"
    "loop-cpu|120|bench loop --backend cpu --positions 550 --subsequence 50 --sessions 10"
    "loop-viewers-10|200|bench loop --sessions 60 --viewers 10"
    "ingest-native|60|bench ingest --frames 200000 --shape 64x64"
  )
  local entry limit
  for entry in "${benches[@]}"; do
    IFS='|' read -r name limit args <<<"$entry"
    ((first)) || echo "," >>"$out/device_bench.json"
    first=0
    local result
    # shellcheck disable=SC2086
    echo "== $name: ptypilot $args" >>"$out/bench.log"
    if result=$(timeout "$limit" "$ptypilot" $args 2>>"$out/bench.log"); then
      printf '{"name": "%s", "result": %s}' "$name" "$result" >>"$out/device_bench.json"
    else
      printf '{"name": "%s", "args": "%s", "error": "exit %s; see bench.log"}' \
        "$name" "$args" "$?" >>"$out/device_bench.json"
    fi
    echo "device_bench: $name done at $((SECONDS - start)) s" >&2
  done
  echo "]" >>"$out/device_bench.json"
  echo "device_bench: $((SECONDS - start)) s in all" >&2
  cat "$out/device_bench.json"
}

case "${1:-}" in
  bundle) shift; bundle "$@" ;;
  run) run ;;
  *) sed -n '2,22p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 2 ;;
esac
