#!/usr/bin/env bash
# Compare qbat-gpu's CPU engine with QuTiP 5 (mesolve + parallel_map) on the
# standard benchmark jobs. QuTiP is optional: nothing else in the project needs it.
#
#   bash benches/compare.sh [--install] [--workers N] [--qutip-members N] [JOB...]
#
#   --install           pip install qutip into ./.venv-qutip first
#   --workers N         QuTiP parallel_map workers (default 2)
#   --qutip-members N   time N QuTiP members and extrapolate to the full job
#                       (default: all members; 200 for cavity-10k)
#   JOB                 bloch-1k | cavity-100 | cavity-10k | dicke-1k  (default: bloch-1k cavity-100)
#
# The Python used is $QUTIP_PYTHON if set, else ./.venv-qutip/bin/python if it
# exists, else python3. Results: /tmp/qbat-JOB.json and /tmp/qutip-JOB.json.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
VENV="$ROOT/.venv-qutip"
INSTALL=0
WORKERS=2
QMEMBERS=""
JOBS=()

while [[ $# -gt 0 ]]; do
  case "$1" in
    --install) INSTALL=1 ;;
    --workers) WORKERS="$2"; shift ;;
    --qutip-members) QMEMBERS="$2"; shift ;;
    -h|--help) sed -n '2,14p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    bloch-1k|cavity-100|cavity-10k|dicke-1k) JOBS+=("$1") ;;
    *) echo "compare.sh: unknown argument '$1' (jobs: bloch-1k cavity-100 cavity-10k dicke-1k)" >&2; exit 2 ;;
  esac
  shift
done
[[ ${#JOBS[@]} -eq 0 ]] && JOBS=(bloch-1k cavity-100)

if [[ $INSTALL -eq 1 ]]; then
  if [[ -z "${QUTIP_PYTHON:-}" ]]; then
    if [[ ! -x "$VENV/bin/python" ]]; then
      python3 -m venv "$VENV"
      printf '*\n' > "$VENV/.gitignore"   # keep the venv out of git status
    fi
    "$VENV/bin/python" -m pip install --quiet --upgrade pip
    "$VENV/bin/python" -m pip install --quiet qutip
  else
    "$QUTIP_PYTHON" -m pip install --quiet qutip
  fi
fi

if [[ -n "${QUTIP_PYTHON:-}" ]]; then PY="$QUTIP_PYTHON"
elif [[ -x "$VENV/bin/python" ]]; then PY="$VENV/bin/python"
else PY=python3; fi

if ! QV="$("$PY" -W ignore -c 'import qutip; print(qutip.__version__)' 2>/dev/null)"; then
  echo "compare.sh: QuTiP is not installed for $PY." >&2
  echo "            Run 'bash benches/compare.sh --install' (creates ./.venv-qutip)," >&2
  echo "            or set QUTIP_PYTHON to a Python that has qutip." >&2
  exit 3
fi
echo "QuTiP $QV ($PY), $WORKERS workers"

SUMMARY=()
for JOB in "${JOBS[@]}"; do
  echo "== $JOB: qbat-gpu (cpu backend)"
  QB="/tmp/qbat-$JOB.json"
  QT="/tmp/qutip-$JOB.json"
  cargo run --release --quiet -- bench "$JOB" --backend cpu --json "$QB"

  echo "== $JOB: QuTiP"
  M="$QMEMBERS"
  [[ -z "$M" && "$JOB" == cavity-10k ]] && M=200
  [[ -z "$M" && "$JOB" == dicke-1k ]] && M=20
  QARGS=(--job "$JOB" --workers "$WORKERS" --json "$QT")
  [[ -n "$M" ]] && QARGS+=(--members "$M")
  "$PY" -W ignore "$ROOT/benches/qutip/bench_qutip.py" "${QARGS[@]}"

  LINE="$(python3 - "$QB" "$QT" <<'EOF'
import json, sys
qb = json.load(open(sys.argv[1]))
qt = json.load(open(sys.argv[2]))
job = qb[0] if isinstance(qb, list) else qb
be = next((b for b in job["backends"] if b["backend"] != "gpu"), job["backends"][0])
qwall = qt["extrapolated_wall_s"]
note = "" if qt["members"] == qt["total_members"] else f" (QuTiP extrapolated from {qt['members']} members)"
print(f"{qt['job']:<11} qbat-gpu {be['wall_median_s']:9.3f} s ({be['member_steps_per_s']:.3e} member-steps/s, "
      f"err {be['max_abs_error']:.1e})  QuTiP {qwall:9.3f} s (err {qt['max_abs_error'] if qt['max_abs_error'] is not None else float('nan'):.1e})  "
      f"QuTiP/qbat-gpu = {qwall / be['wall_median_s']:.1f}x{note}")
EOF
)"
  SUMMARY+=("$LINE")
done

echo
echo "== wall-time ratio, QuTiP ($WORKERS workers) / qbat-gpu (cpu backend)"
printf '%s\n' "${SUMMARY[@]}"
