#!/usr/bin/env bash
# One short device check on a lent GPU machine (H100/H200): kernel-only and end-to-end
# member-steps/s, the phase split, GPU utilisation sampled by nvidia-smi, and the GPU/CPU ratio
# in the same run, for bloch-100k, cavity-10k, dicke-1k and the main job.
#
# Here: build the release binary and copy it to .device/qbat-gpu; fetch the Vulkan loader's
# Debian packages (libvulkan1 and the GL/EGL dispatch libraries) into .gl/; keep both folders
# out of git (.git/info/exclude).
# There (the device tool's run, carry [".gl", ".device"]):
#   for f in .gl/*.deb; do dpkg -x $f /; done; ldconfig; bash benches/device-check.sh
# Everything lands in $OUT (summary.txt first). QUICK=1 shrinks every job for a smoke test on
# a machine without a GPU (lavapipe or the CPU engine). Each phase has its own time limit, so
# the whole script stays under 8 minutes; a phase that hits it is reported, not fatal.
set -u
OUT=${OUT:-/tmp/qbat-device-check}
BIN=${BIN:-.device/qbat-gpu}
QUICK=${QUICK:-0}
mkdir -p "$OUT"
WORK=$(mktemp -d)
SUMMARY="$OUT/summary.txt"
: > "$SUMMARY"
export VK_DRIVER_FILES=${VK_DRIVER_FILES:-/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json}
[ -f "$VK_DRIVER_FILES" ] || unset VK_DRIVER_FILES

say() { echo "$*" | tee -a "$SUMMARY"; }
have_smi() { command -v nvidia-smi >/dev/null 2>&1; }

say "# qbat-gpu device check, $(date -u +%Y-%m-%dT%H:%MZ)"
say "binary: $("$BIN" --version 2>&1)"
have_smi && nvidia-smi -L 2>&1 | tee -a "$SUMMARY"
say "cpu: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//')"

# phase NAME LIMIT_S CMD...: runs CMD with a limit, samples the GPU meanwhile, reports wall
# time and the mean utilisation; CMD's output goes to summary.txt.
phase() {
  local name=$1 limit=$2; shift 2
  say ""
  say "## $name: $*"
  local smi_pid=""
  if have_smi; then
    nvidia-smi --query-gpu=utilization.gpu,memory.used --format=csv,noheader,nounits -lms 100 \
      > "$WORK/smi-$name.csv" 2>/dev/null &
    smi_pid=$!
  fi
  local t0 t1 rc
  t0=$(date +%s.%N)
  timeout "$limit" "$@" >> "$SUMMARY" 2>&1
  rc=$?
  t1=$(date +%s.%N)
  [ -n "$smi_pid" ] && { kill "$smi_pid" 2>/dev/null; wait "$smi_pid" 2>/dev/null; }
  local wall
  wall=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.2f", b - a }')
  [ $rc -eq 124 ] && say "$name: STOPPED at its ${limit} s limit"
  say "$name: exit $rc, wall $wall s"
  if [ -s "$WORK/smi-$name.csv" ]; then
    awk -F', *' -v n="$name" '{ u += $1; c++; if ($1 > 0) busy++; if ($2 > m) m = $2 }
      END { if (c) printf "%s: GPU utilisation mean %.0f%%, nonzero in %d of %d samples (100 ms), peak memory %d MiB\n", n, u / c, busy, c, m }' \
      "$WORK/smi-$name.csv" | tee -a "$SUMMARY"
  fi
}

# run.json's timings of a CLI run, one line
timings() {
  [ -f "$1/run.json" ] && python3 - "$1/run.json" <<'PY' | tee -a "$SUMMARY"
import json, sys
r = json.load(open(sys.argv[1]))
t = r.get("timings", {})
print("  run.json timings:", ", ".join(f"{k} {v:.3f} s" for k, v in t.items() if isinstance(v, (int, float))))
print("  backend:", r.get("backend"), "| device:", r.get("device"), "| members:", r.get("members"))
plan = r.get("engine_plan") or {}
if "workgroup_tile" in plan:
    print("  cavity workgroup tile:", plan["workgroup_tile"])
PY
  return 0
}

# Members per phase. The whole-CLI bloch run keeps statistics of every sample (2,001 samples x
# 19 measures per member), so it is sized to finish inside its limit on the host as coded
# (20,000 members took 5.5 s on the H200 machine's 16 cores, 2026-12-04).
if [ "$QUICK" = 1 ]; then
  M_BLOCH=2000; M_RUN_BLOCH=200; M_CAV=20; M_CAV_PAIR=8; M_DICKE=4; M_DICKE_RATIO=4; M_MAIN=2000; M_MAIN_CPU=2000; M_FULL_4X4=2000
else
  M_BLOCH=20000; M_RUN_BLOCH=20000; M_CAV=10000; M_CAV_PAIR=2000; M_DICKE=1000; M_DICKE_RATIO=64; M_MAIN=100000; M_MAIN_CPU=20000; M_FULL_4X4=100000
fi

# 1. bench: kernel-only (the "kernels alone" line: device time from submit to completion),
# integrate (kernels, read-back and host rows) and in-memory end to end, GPU and CPU in the same
# run.
phase bench-bloch 60 "$BIN" bench bloch-100k --members "$M_BLOCH" --repeat 1 --json "$OUT/bench-bloch.json"
phase bench-dicke-gpu 50 "$BIN" bench dicke-1k --backend gpu --members "$M_DICKE" --repeat 1 --json "$OUT/bench-dicke-gpu.json"
phase bench-dicke 45 "$BIN" bench dicke-1k --members "$M_DICKE_RATIO" --repeat 1 --json "$OUT/bench-dicke.json"
# the driven two-qubit kernel against the undriven one (one invocation, so the ratio holds)
phase bench-driven-gpu 30 "$BIN" bench bloch-1k bloch-1k-driven --backend gpu --repeat 1 --json "$OUT/bench-driven-gpu.json"
# the 4x4 kernel against the CPU engine with the device full (bloch-1k's few samples, so the
# integration dominates), GPU and CPU in one invocation
phase bench-4x4-full 40 "$BIN" bench bloch-1k --members "$M_FULL_4X4" --repeat 1 --json "$OUT/bench-4x4-full.json"

# 2. whole CLI runs, from the command to the files (no series: bloch-100k's would be 15 GB)
"$BIN" bench bloch-100k --members "$M_RUN_BLOCH" --print-config > "$WORK/bloch.toml"
"$BIN" bench cavity-10k --members "$M_CAV" --print-config > "$WORK/cavity.toml"
phase run-bloch-gpu 40 "$BIN" run "$WORK/bloch.toml" --backend gpu --series false --verify 0 --no-progress --no-plots --out "$WORK/bloch-gpu"
timings "$WORK/bloch-gpu"
phase main-gpu 45 "$BIN" --ensemble "$M_MAIN" --series false --backend gpu --no-progress --out "$WORK/main-gpu"
timings "$WORK/main-gpu"
phase main-cpu 30 "$BIN" --ensemble "$M_MAIN_CPU" --series false --backend cpu --no-progress --out "$WORK/main-cpu"
timings "$WORK/main-cpu"
[ "${SKIP_CAVITY:-0}" = 1 ] || phase run-cavity-gpu 60 "$BIN" run "$WORK/cavity.toml" --backend gpu --verify 2 --no-progress --no-plots --out "$WORK/cavity-gpu"
[ "${SKIP_CAVITY:-0}" = 1 ] || timings "$WORK/cavity-gpu"
# the cavity kernel's workgroup tile against gathering from device memory, one pair in turn
"$BIN" bench cavity-10k --members "$M_CAV_PAIR" --print-config > "$WORK/cavity-pair.toml"
for tile in on off; do
  export QBAT_CAVITY_TILE=$tile
  [ "${SKIP_CAVITY:-0}" = 1 ] || phase "run-cavity-tile-$tile" 30 "$BIN" run "$WORK/cavity-pair.toml" --backend gpu --verify 0 --series false --no-progress --no-plots --out "$WORK/cavity-tile-$tile"
  [ "${SKIP_CAVITY:-0}" = 1 ] || timings "$WORK/cavity-tile-$tile"
done
unset QBAT_CAVITY_TILE

cp "$WORK"/bloch-gpu/run.json "$OUT/run-bloch-gpu.json" 2>/dev/null
cp "$WORK"/cavity-gpu/run.json "$OUT/run-cavity-gpu.json" 2>/dev/null
rm -rf "$WORK"
say ""
say "done $(date -u +%H:%M:%SZ)"
