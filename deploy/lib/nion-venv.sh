#!/usr/bin/env bash
# Makes .venv-nion, the environment of the Nion Swift bridge (scan_driver/nion): Nion Swift, its
# instrumentation and the simulated microscope (nionswift-usim) at the versions in
# deploy/nion-requirements.txt. `deploy/run test` calls it; the Nion bridge's end-to-end test
# calls it too when the venv is missing, and skips, saying why, when PyPI cannot be reached.
#
# Without Debian's site packages: Nion pulls numpy 2, and Debian's h5py, scipy and torch are
# built for numpy 1. The bridge runs in this venv as its own process; the tests drive it from
# /usr/bin/python3.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
venv="${PTYPILOT_NION_VENV:-$root/.venv-nion}"  # PTYPILOT_NION_VENV: elsewhere
requirements="$root/deploy/nion-requirements.txt"
stamp="$venv/.requirements"
if [[ -f $stamp ]] && cmp -s "$stamp" "$requirements"; then
  exit 0
fi
exec 9>"$venv.lock"
flock 9
if [[ -f $stamp ]] && cmp -s "$stamp" "$requirements"; then
  exit 0  # another caller made it while this one waited
fi
echo "deploy: making $venv (Nion Swift, pinned in $requirements)" >&2
/usr/bin/python3 -m venv --clear "$venv"
"$venv/bin/pip" install --quiet --no-input --disable-pip-version-check -r "$requirements"
cp "$requirements" "$stamp"
