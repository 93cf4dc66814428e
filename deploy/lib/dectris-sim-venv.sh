#!/usr/bin/env bash
# Makes .venv-dectris-sim, the environment of LiberTEM-live's DECTRIS simulator (DectrisSim of
# libertem-dectris), the peer of tests/python/test_dectris_sim_peer.py: the versions in
# deploy/dectris-sim-requirements.txt. `deploy/run test` runs it; it does nothing when the venv
# matches the requirements.
#
# Without Debian's site packages: the simulator runs in its own process (the test starts
# .venv-dectris-sim/bin/python), and the wheel's numpy 2 must not meet Debian's numpy 1.
#
# When PyPI cannot be reached the venv is not made, the reason is written to
# .venv-dectris-sim.error, and the test skips, quoting it. Exit status 0 either way unless
# --strict is given.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
venv="$root/.venv-dectris-sim"
requirements="$root/deploy/dectris-sim-requirements.txt"
stamp="$venv/.requirements"
error="$root/.venv-dectris-sim.error"
strict=0
[[ ${1:-} == --strict ]] && strict=1
if [[ -f $stamp ]] && cmp -s "$stamp" "$requirements"; then
  exit 0
fi
echo "deploy: making $venv (libertem-dectris, pinned in $requirements)" >&2
rm -f "$error"
/usr/bin/python3 -m venv --clear "$venv"
if ! log=$("$venv/bin/pip" install --quiet --no-input --disable-pip-version-check --timeout 30 \
             --retries 1 -r "$requirements" 2>&1); then
  rm -rf "$venv"
  { echo "pip install -r deploy/dectris-sim-requirements.txt failed (is PyPI reachable?):"
    echo "$log" | tail -5; } >"$error"
  echo "deploy: $(head -1 "$error") the DectrisSim peer test will skip" >&2
  ((strict)) && exit 1
  exit 0
fi
cp "$requirements" "$stamp"
