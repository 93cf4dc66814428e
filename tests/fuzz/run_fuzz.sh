#!/bin/sh
# run_fuzz.sh FUZZ_BUILD_DIR TARGET SECONDS: fuzzes TARGET for SECONDS, starting from the seed
# corpus that make_seed_corpus generates (valid messages of every kind). A crash, a leak, a
# sanitizer report or an input slower than 10 s fails the run; libFuzzer leaves the input as
# FUZZ_BUILD_DIR/crash-* (or leak-*, timeout-*) to reproduce with `TARGET FILE`.
set -eu
dir=$1
target=$2
seconds=$3
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
"$dir/make_seed_corpus" "$work/seeds"
mkdir "$work/corpus"
exec "$dir/$target" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 \
  -print_final_stats=1 -artifact_prefix="$dir/" "$work/corpus" "$work/seeds/$target"
