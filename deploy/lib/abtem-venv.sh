#!/usr/bin/env bash
# Makes .venv-abtem, the environment of the abTEM cross-check (models/ptypilot/abtem_data.py):
# abTEM and its dependencies at the versions in deploy/abtem-requirements.txt. It is not part of
# the daemon, of `deploy/run test` or of CI.
#
# Without Debian's site packages: abTEM pulls numpy 2, and Debian's matplotlib, scipy and torch
# are built for numpy 1, so mixing the two breaks at import.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
venv="$root/.venv-abtem"
requirements="$root/deploy/abtem-requirements.txt"
stamp="$venv/.requirements"
if [[ -f $stamp ]] && cmp -s "$stamp" "$requirements"; then
  exit 0
fi
echo "deploy: making $venv (abTEM, pinned in $requirements)" >&2
/usr/bin/python3 -m venv --clear "$venv"
"$venv/bin/pip" install --quiet --no-input -r "$requirements"
cp "$requirements" "$stamp"
