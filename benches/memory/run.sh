#!/usr/bin/env bash
# Peak host memory of streamed runs without a series: 10^5 and 10^6 members of the same
# two-qubit study (bloch-charger, 51 samples, 7 measures). Held in memory, the results of the
# 10^6-member run would take 10^6 x 51 x 7 x 8 B = 2.9 GB; streamed, only a block is.
# Usage: benches/memory/run.sh [--backend cpu|gpu]   (prints peak RSS from run.json)
set -euo pipefail
cd "$(dirname "$0")/../.."
cargo build --release --quiet
out=$(mktemp -d)
for n in 100000 1000000; do
  start=$(date +%s.%N)
  ./target/release/qbat-gpu run benches/memory/bloch-1m.toml --ensemble "$n" --series false --no-plots --no-progress --verify 2 --out "$out/m$n" "$@" >/dev/null
  wall=$(echo "$(date +%s.%N) - $start" | bc)
  python3 - "$out/m$n/run.json" "$n" "$wall" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
print(f"{int(sys.argv[2]):>8} members: peak RSS {r['peak_rss_bytes']/2**20:8.1f} MiB, {r['blocks']['count']} blocks of {r['blocks']['members_per_block']}, wall {float(sys.argv[3]):.1f} s, backend {r['backend']} ({r['device']})")
PY
done
rm -rf "$out"
