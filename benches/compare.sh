#!/usr/bin/env bash
# Compare qbat-gpu's CPU engine with QuTiP 5 (mesolve + parallel_map) on the standard
# benchmark jobs, and on bloch-1k also with dynamiqs (all members in one batched dq.mesolve).
# QuTiP and dynamiqs are optional: nothing else in the project needs them.
#
#   bash benches/compare.sh [--install] [--workers N] [--qutip-members N] [--members N]
#                           [--repeat N] [--no-dynamiqs] [JOB...]
#
#   --install           pip install qutip, dynamiqs 0.3.7 and jax (CPU) into ./.venv-qutip first
#   --workers N         QuTiP parallel_map workers (default 2)
#   --qutip-members N   time N QuTiP members and extrapolate to the full job
#                       (default: all members; 200 for cavity-10k, 20 for dicke-1k)
#   --members N         bloch-1k only: run the job with N members on every side (a quick check)
#   --repeat N          bloch-1k: timed whole CLI runs and compiled dynamiqs calls (default 3)
#   --no-dynamiqs       skip dynamiqs
#   JOB                 bloch-1k | cavity-100 | cavity-10k | dicke-1k  (default: bloch-1k cavity-100)
#
# bloch-1k runs, in this order: `qbat-gpu bench` (integration time, median of 3), the whole CLI
# run of the same job (`qbat-gpu run` of `bench bloch-1k --print-config`, --format npy
# --verify 0; with plots, then --no-plots), dynamiqs (first call and compiled call) and QuTiP,
# both on the CLI run's own members, then prints the times and ratios.
#
# The qbat-gpu binary is $QBAT_BIN if set, else target/release/qbat-gpu built with
# `cargo build --release`. The Python used is $QUTIP_PYTHON if set, else
# ./.venv-qutip/bin/python if it exists, else python3; dynamiqs runs on $DYNAMIQS_PYTHON if
# set, else the same Python. Results: /tmp/qbat-JOB.json, /tmp/qutip-JOB.json and, for
# bloch-1k, /tmp/qbat-bloch-1k.toml, /tmp/qbat-bloch-1k-run/, /tmp/dynamiqs-bloch-1k.json.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
VENV="$ROOT/.venv-qutip"
INSTALL=0
WORKERS=2
QMEMBERS=""
MEMBERS=""
REPEAT=3
DYNAMIQS=1
JOBS=()

while [[ $# -gt 0 ]]; do
  case "$1" in
    --install) INSTALL=1 ;;
    --workers) WORKERS="$2"; shift ;;
    --qutip-members) QMEMBERS="$2"; shift ;;
    --members) MEMBERS="$2"; shift ;;
    --repeat) REPEAT="$2"; shift ;;
    --no-dynamiqs) DYNAMIQS=0 ;;
    -h|--help) awk 'NR > 1 && !/^#/ { exit } NR > 1' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    bloch-1k|cavity-100|cavity-10k|dicke-1k) JOBS+=("$1") ;;
    *) echo "compare.sh: unknown argument '$1' (jobs: bloch-1k cavity-100 cavity-10k dicke-1k)" >&2; exit 2 ;;
  esac
  shift
done
[[ ${#JOBS[@]} -eq 0 ]] && JOBS=(bloch-1k cavity-100)
for n in "$WORKERS" "$REPEAT" ${QMEMBERS:+"$QMEMBERS"} ${MEMBERS:+"$MEMBERS"}; do
  [[ "$n" =~ ^[1-9][0-9]*$ ]] || { echo "compare.sh: '$n' is not a positive integer" >&2; exit 2; }
done
BLOCH=0
for JOB in "${JOBS[@]}"; do [[ "$JOB" == bloch-1k ]] && BLOCH=1; done
[[ $BLOCH -eq 0 ]] && DYNAMIQS=0   # dynamiqs runs bloch-1k only

PKGS=(qutip)
[[ $DYNAMIQS -eq 1 ]] && PKGS+=("dynamiqs==0.3.7" "jax[cpu]")
if [[ $INSTALL -eq 1 ]]; then
  if [[ -z "${QUTIP_PYTHON:-}" ]]; then
    if [[ ! -x "$VENV/bin/python" ]]; then
      python3 -m venv "$VENV"
      printf '*\n' > "$VENV/.gitignore"   # keep the venv out of git status
    fi
    "$VENV/bin/python" -m pip install --quiet --upgrade pip
    "$VENV/bin/python" -m pip install --quiet "${PKGS[@]}"
  else
    "$QUTIP_PYTHON" -m pip install --quiet "${PKGS[@]}"
  fi
fi

if [[ -n "${QUTIP_PYTHON:-}" ]]; then PY="$QUTIP_PYTHON"
elif [[ -x "$VENV/bin/python" ]]; then PY="$VENV/bin/python"
else PY=python3; fi
DPY="${DYNAMIQS_PYTHON:-$PY}"

if ! QV="$("$PY" -W ignore -c 'import qutip; print(qutip.__version__)' 2>/dev/null)"; then
  echo "compare.sh: QuTiP is not installed for $PY." >&2
  echo "            Run 'bash benches/compare.sh --install' (creates ./.venv-qutip)," >&2
  echo "            or set QUTIP_PYTHON to a Python that has qutip." >&2
  exit 3
fi
echo "QuTiP $QV ($PY), $WORKERS workers"
if [[ $DYNAMIQS -eq 1 ]]; then
  if ! DV="$("$DPY" -W ignore -c 'import dynamiqs, jax; print(dynamiqs.__version__, "/ jax", jax.__version__)' 2>/dev/null)"; then
    echo "compare.sh: dynamiqs (with jax) is not installed for $DPY." >&2
    echo "            Run 'bash benches/compare.sh --install' (creates ./.venv-qutip)," >&2
    echo "            set DYNAMIQS_PYTHON to a Python that has it, or pass --no-dynamiqs." >&2
    exit 3
  fi
  echo "dynamiqs $DV ($DPY)"
fi

if [[ -n "${QBAT_BIN:-}" ]]; then QBAT="$QBAT_BIN"
else
  cargo build --release --quiet
  QBAT="${CARGO_TARGET_DIR:-$ROOT/target}/release/qbat-gpu"
fi
echo "qbat-gpu: $QBAT ($("$QBAT" --version))"

# bloch-1k: bench, whole CLI run, dynamiqs, QuTiP; prints its summary lines on stdout's last lines
bloch_1k() {
  local CFG=/tmp/qbat-bloch-1k.toml OUT=/tmp/qbat-bloch-1k-run QB=/tmp/qbat-bloch-1k.json
  local QT=/tmp/qutip-bloch-1k.json DQ=/tmp/dynamiqs-bloch-1k.json WALLS=/tmp/qbat-bloch-1k-walls.txt
  local MARGS=()
  [[ -n "$MEMBERS" ]] && MARGS=(--members "$MEMBERS")
  "$QBAT" bench bloch-1k "${MARGS[@]}" --print-config > "$CFG"
  local LOAD0
  LOAD0="$(cut -d' ' -f1 /proc/loadavg 2>/dev/null || echo '?')"

  echo "== bloch-1k: qbat-gpu bench (cpu backend)"
  "$QBAT" bench bloch-1k "${MARGS[@]}" --backend cpu --json "$QB"

  echo "== bloch-1k: qbat-gpu run $CFG --backend cpu --format npy --verify 0 ($REPEAT runs, then $REPEAT with --no-plots)"
  : > "$WALLS"
  local i t0 t1 plots
  for plots in "" --no-plots; do
    for ((i = 0; i < REPEAT; i++)); do
      t0=$EPOCHREALTIME
      "$QBAT" run "$CFG" --backend cpu --format npy --verify 0 --no-progress --force --out "$OUT" $plots > "$OUT.log"
      t1=$EPOCHREALTIME
      echo "${plots:-plots} $t0 $t1" >> "$WALLS"
    done
  done
  sed -n 's/^/  /p' "$OUT.log"

  if [[ $DYNAMIQS -eq 1 ]]; then
    echo "== bloch-1k: dynamiqs (one batched dq.mesolve)"
    "$DPY" -W ignore "$ROOT/benches/dynamiqs/bench_dynamiqs.py" --config "$CFG" --qbat-out "$OUT" \
      --repeat "$REPEAT" --json "$DQ"
  else
    rm -f "$DQ"
  fi

  echo "== bloch-1k: QuTiP"
  local QARGS=(--job bloch-1k --config "$CFG" --qbat-out "$OUT" --workers "$WORKERS" --json "$QT")
  [[ -n "$QMEMBERS" ]] && QARGS+=(--members "$QMEMBERS")
  "$PY" -W ignore "$ROOT/benches/qutip/bench_qutip.py" "${QARGS[@]}"

  local LOAD1
  LOAD1="$(cut -d' ' -f1 /proc/loadavg 2>/dev/null || echo '?')"
  BLOCH_SUMMARY="$(python3 - "$QB" "$WALLS" "$OUT/run.json" "$DQ" "$QT" "$LOAD0" "$LOAD1" <<'EOF'
import json, os, statistics, sys
qb, walls_f, run_f, dq_f, qt_f, load0, load1 = sys.argv[1:]
job = json.load(open(qb))
job = job[0] if isinstance(job, list) else job
be = next((b for b in job["backends"] if b["backend"] == "cpu"), job["backends"][0])
walls = {"plots": [], "--no-plots": []}
for kind, a, b in (l.split() for l in open(walls_f) if l.strip()):
    walls[kind].append(float(b) - float(a))
run = json.load(open(run_f))
integ = be["integrate_median_s"]
w, wn = statistics.median(walls["plots"]), statistics.median(walls["--no-plots"])
print(f"members {job['members']}, {job['steps_per_member']} steps, {run['samples']} samples; "
      f"load average (1 min) {load0} at the start, {load1} at the end, on {os.cpu_count()} CPUs")
print(f"qbat-gpu whole CLI run    {w:9.3f} s median, {min(walls['plots']):.3f} s min of {len(walls['plots'])} "
      f"(wall/bench integration {w / integ:.1f}x)")
print(f"  the same, --no-plots    {wn:9.3f} s median, {min(walls['--no-plots']):.3f} s min "
      f"(its own integrate {run['timings']['integrate']:.3f} s; wall/bench integration {wn / integ:.1f}x)")
print(f"qbat-gpu bench integrate  {integ:9.3f} s median of {be['repeats']} "
      f"({be['member_steps_per_s']:.3e} member-steps/s, err {be['max_abs_error']:.1e} vs closed form)")
rows = []
if os.path.exists(dq_f):
    dq = json.load(open(dq_f))
    dev = dq["max_abs_dev_qbat"]
    print(f"dynamiqs first call       {dq['first_call_s']:9.3f} s (compilation included)")
    print(f"dynamiqs compiled call    {dq['compiled_median_s']:9.3f} s median, {dq['compiled_min_s']:.3f} s min of "
          f"{len(dq['compiled_s'])} (err {dq['max_abs_error']:.1e} vs closed form, {dev:.1e} vs qbat-gpu)")
    rows += [("dynamiqs compiled", dq["compiled_median_s"], "10x"), ("dynamiqs first call", dq["first_call_s"], None)]
qt = json.load(open(qt_f))
note = "" if qt["members"] == qt["total_members"] else f", extrapolated from {qt['members']} members"
print(f"QuTiP ({qt['workers']} workers)        {qt['extrapolated_wall_s']:9.3f} s (err {qt['max_abs_error']:.1e} vs closed form, "
      f"{qt.get('max_abs_dev_qbat', float('nan')):.1e} vs qbat-gpu{note})")
rows.append(("QuTiP", qt["extrapolated_wall_s"], "200x"))
print("ratios, peer time / qbat-gpu time:  whole CLI run   --no-plots   bench integration   target (whole run)")
for name, t, target in rows:
    print(f"  {name:<22} {t / w:16.1f}x {t / wn:11.1f}x {t / integ:18.1f}x   {target or '-'}")
EOF
)"
}

SUMMARY=()
BLOCH_SUMMARY=""
for JOB in "${JOBS[@]}"; do
  if [[ "$JOB" == bloch-1k ]]; then
    bloch_1k
    continue
  fi
  echo "== $JOB: qbat-gpu (cpu backend)"
  QB="/tmp/qbat-$JOB.json"
  QT="/tmp/qutip-$JOB.json"
  "$QBAT" bench "$JOB" --backend cpu --json "$QB"

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

if [[ -n "$BLOCH_SUMMARY" ]]; then
  echo
  echo "== bloch-1k: qbat-gpu (cpu backend) against dynamiqs and QuTiP, this invocation"
  printf '%s\n' "$BLOCH_SUMMARY"
fi
if [[ ${#SUMMARY[@]} -gt 0 ]]; then
  echo
  echo "== wall-time ratio, QuTiP ($WORKERS workers) / qbat-gpu (cpu backend)"
  printf '%s\n' "${SUMMARY[@]}"
fi
