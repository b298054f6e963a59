#!/usr/bin/env bash
# Install the core and each extra ALONE into a fresh venv and run its smoke test there.
#
# Usage: scripts/check_extras.sh [torch core serve eval spark llama-index]  (default: all)
#
# Versions come from requirements-lock.txt as constraints, so each venv gets the pins the full
# suite ran with, and an extra that forgets a dependency fails its own smoke test
# (scripts/extras_smoke.py) instead of passing on a package another extra brought along.
# torch runs first: it registers an onnx-backend MiniLM version that core, serve and spark then
# load, which proves a default version serves without torch. Keep the pip cache warm: with it
# the whole run takes minutes, not the download time of every wheel.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
PYTHON="${PYTHON:-python3}"
EXTRAS=("$@")
[ ${#EXTRAS[@]} -gt 0 ] || EXTRAS=(torch core serve eval spark llama-index)
WORK="$(mktemp -d "${TMPDIR:-/tmp}/rag-extras.XXXXXX")"
# venvs are big (torch ~1 GB); keep them only when asked, to look into a failure
[ -n "${KEEP_EXTRAS_VENVS:-}" ] || trap 'rm -rf "$WORK"' EXIT
# pip's find-links/index warnings repeat for every package: keep the log readable
quiet() { grep -v -e "is ignored: it is neither a file nor a directory" || true; }

report=()
for extra in "${EXTRAS[@]}"; do
  venv="$WORK/venv-$extra"
  started=$(date +%s)
  echo "== $extra: fresh venv in $venv"
  "$PYTHON" -m venv "$venv"
  "$venv/bin/python" -m pip install -q pip==26.3 2>&1 | quiet
  if [ "$extra" = torch ]; then
    # exactly this spec, before anything that depends on torch: it is the local CPU wheel, and
    # any other spec pulls gigabytes of CUDA wheels
    "$venv/bin/python" -m pip install -q torch==2.13.0 2>&1 | quiet
  fi
  target="$ROOT"
  [ "$extra" = core ] || target="$ROOT[$extra]"
  # a regular (not editable) install, so the package data must be declared to be there
  "$venv/bin/python" -m pip install -q -c "$ROOT/requirements-lock.txt" "$target" 2>&1 | quiet
  installed=$(date +%s)
  # run from the work folder: the smoke test must import the venv's copy, not the checkout
  (cd "$WORK" && PATH="$venv/bin:$PATH" "$venv/bin/python" "$ROOT/scripts/extras_smoke.py" \
    "$extra" --work "$WORK")
  finished=$(date +%s)
  size=$(du -sb "$venv" | cut -f1)
  packages=$("$venv/bin/python" -m pip list 2>/dev/null | tail -n +3 | wc -l)
  report+=("$(printf '%-12s install %4ss  smoke %4ss  %5s MB  %3s packages' "$extra" \
    $((installed - started)) $((finished - installed)) $((size / 1000000)) "$packages")")
  # free the disk before the next venv; the pip cache keeps the wheels
  rm -rf "$venv"
done
echo "== every install passed its smoke test"
printf '%s\n' "${report[@]}"
