#!/bin/bash
# End-to-end check of the Slurm example on a real one-node Slurm cluster on localhost:
#
#   1. installs Debian's slurm-wlm and munge when they are missing (apt-get; needs root);
#   2. starts munged, slurmctld and slurmd directly (no systemd), with all their state, keys,
#      sockets and logs in a fresh temporary directory, and waits for the node to be idle;
#   3. runs submit.sh (the 4-task array, then the merge with afterok), and requeues shard 0 once
#      it has checkpointed a block, so that its second run must continue with --resume;
#   4. runs the same study unsharded with the same binary, and checks with cmp that the merged
#      series.csv, summary.csv and stats.csv equal the unsharded ones.
#
# Prints PASS or FAIL (exit 1). The daemons and any jobs are stopped on every exit; the temporary
# directory is removed after a PASS (unless QBAT_KEEP=1) and kept, with the logs, after a FAIL.
# Re-runnable.
#
# Settings: QBAT (binary; default: target/release/qbat-gpu of this repository, built when
# missing), QBAT_BACKEND (default: auto), QBAT_SLURM_PORT (slurmctld port, default 6817; slurmd
# uses the next one), QBAT_SLURM_TIMEOUT (seconds to wait for the jobs, default 900).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)
t_start=$(date +%s.%N)
elapsed() { printf '%6.1f s' "$(echo "$(date +%s.%N) - $t_start" | bc)"; }
say() { echo "[$(elapsed)] $*"; }
fail() { say "FAIL: $*"; exit 1; }

[[ $(id -u) == 0 ]] || { echo "test-local.sh installs packages and runs the Slurm daemons: run it as root" >&2; exit 2; }
command -v bc >/dev/null || elapsed() { printf '%4d s' $(( $(date +%s) - ${t_start%.*} )); }

# -- 1. packages --------------------------------------------------------------------------------
if ! command -v slurmctld >/dev/null || ! command -v slurmd >/dev/null || ! command -v sbatch >/dev/null || ! command -v munged >/dev/null; then
    say "installing slurm-wlm and munge (apt-get)"
    # Keep the packages' init scripts from starting system daemons that this script would not
    # stop: the daemons below are started by hand with their own files.
    if [[ ! -e /usr/sbin/policy-rc.d ]]; then
        trap 'rm -f /usr/sbin/policy-rc.d' EXIT
        printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
        chmod 755 /usr/sbin/policy-rc.d
    fi
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends slurm-wlm munge >/dev/null
    if trap -p EXIT | grep -q policy-rc.d; then
        rm -f /usr/sbin/policy-rc.d
        trap - EXIT
    fi
    say "installed: $(slurmctld -V), munge $(munged --version 2>&1 | awk '{print $2; exit}')"
else
    say "found $(slurmctld -V) and munged"
fi

# -- 2. the binary --------------------------------------------------------------------------------
qbat=${QBAT:-$repo/target/release/qbat-gpu}
if [[ ! -x $qbat ]]; then
    [[ -z ${QBAT:-} ]] || fail "QBAT=$qbat is not an executable"
    say "building $qbat (cargo build --release)"
    (cd "$repo" && cargo build --release --quiet)
fi
qbat=$(realpath "$qbat")
backend=${QBAT_BACKEND:-auto}

# -- 3. a one-node cluster on localhost ---------------------------------------------------------
ctld_port=${QBAT_SLURM_PORT:-6817}
slurmd_port=$(( ctld_port + 1 ))
for port in "$ctld_port" "$slurmd_port"; do
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
        echo "port $port is in use (another Slurm daemon?); set QBAT_SLURM_PORT to a free pair" >&2
        exit 2
    fi
done

work=$(mktemp -d /tmp/qbat-slurm.XXXXXX)
pids=()
jobs_to_cancel=()
status=FAIL
cleanup() {
    local rc=$?
    set +e
    if (( ${#jobs_to_cancel[@]} )) && [[ -n ${SLURM_CONF:-} ]]; then
        scancel "${jobs_to_cancel[@]}" 2>/dev/null
        for _ in $(seq 1 60); do
            [[ -z $(squeue -h -j "$(IFS=,; echo "${jobs_to_cancel[*]}")" 2>/dev/null) ]] && break
            sleep 0.5
        done
    fi
    # The daemons, newest first: slurmd, slurmctld, munged.
    for (( i = ${#pids[@]} - 1; i >= 0; i-- )); do
        kill "${pids[i]}" 2>/dev/null
    done
    for pid in "${pids[@]}"; do
        for _ in $(seq 1 40); do kill -0 "$pid" 2>/dev/null || break; sleep 0.25; done
        kill -9 "$pid" 2>/dev/null
        wait "$pid" 2>/dev/null
    done
    if [[ $status == PASS && ${QBAT_KEEP:-0} != 1 ]]; then
        rm -rf "$work"
    else
        echo "daemon logs and outputs kept in $work" >&2
    fi
    say "daemons stopped; $status (wall time $(elapsed | tr -s ' '))"
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

mkdir -p "$work"/{munge,state,spool,log}
# Mesa's Vulkan loader (a software or real GPU adapter) wants a runtime dir; the jobs inherit it.
if [[ -z ${XDG_RUNTIME_DIR:-} ]]; then
    export XDG_RUNTIME_DIR=$work/xdg
    mkdir -m 700 "$XDG_RUNTIME_DIR"
fi
chmod 700 "$work/munge"
dd if=/dev/urandom of="$work/munge/munge.key" bs=1024 count=1 status=none
chmod 400 "$work/munge/munge.key"
sock=$work/munge/munge.socket
munged --foreground --force --key-file="$work/munge/munge.key" --socket="$sock" \
    --pid-file="$work/munge/munged.pid" --log-file="$work/log/munged.log" \
    --seed-file="$work/munge/munged.seed" 2>>"$work/log/munged.log" &
pids+=($!)
for _ in $(seq 1 50); do [[ -S $sock ]] && break; sleep 0.1; done
munge -S "$sock" -n | unmunge -S "$sock" >/dev/null || fail "munged does not answer (see $work/log/munged.log)"

# The node's real CPUs, sockets, cores, threads and memory, under the name localhost.
hw=$(slurmd -C | head -1 | sed -E 's/^NodeName=[^ ]+ //')
export SLURM_CONF=$work/slurm.conf
cat >"$SLURM_CONF" <<EOF
ClusterName=qbat-local
SlurmctldHost=localhost(127.0.0.1)
SlurmctldPort=$ctld_port
SlurmdPort=$slurmd_port
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
# cred_expire also sets how long a requeued job waits before it may start again (default 120 s).
AuthInfo=socket=$sock,cred_expire=10
StateSaveLocation=$work/state
SlurmdSpoolDir=$work/spool
SlurmctldPidFile=$work/slurmctld.pid
SlurmdPidFile=$work/slurmd.pid
SlurmctldLogFile=$work/log/slurmctld.log
SlurmdLogFile=$work/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
MpiDefault=none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SchedulerType=sched/backfill
SchedulerParameters=sched_interval=2,bf_interval=2
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
ReturnToService=2
KillWait=5
NodeName=localhost NodeAddr=127.0.0.1 $hw State=UNKNOWN
PartitionName=debug Nodes=localhost Default=YES MaxTime=INFINITE State=UP
EOF

slurmctld -D -i -f "$SLURM_CONF" >>"$work/log/slurmctld.out" 2>&1 &
pids+=($!)
for _ in $(seq 1 50); do scontrol ping >/dev/null 2>&1 && break; sleep 0.2; done
scontrol ping >/dev/null 2>&1 || fail "slurmctld does not answer (see $work/log/slurmctld.log)"
slurmd -D -N localhost -f "$SLURM_CONF" >>"$work/log/slurmd.out" 2>&1 &
pids+=($!)
state=
for _ in $(seq 1 120); do
    state=$(sinfo -h -N -n localhost -o %t 2>/dev/null || true)
    [[ $state == idle ]] && break
    sleep 0.5
done
[[ $state == idle ]] || fail "node localhost is '$state', not idle (see $work/log/slurmd.log)"
say "cluster up: $(sinfo -h -N -o '%N %t cpus=%c mem=%mMB')"

# -- 4. the sharded study under Slurm -------------------------------------------------------------
root=$work/study
cd "$work"
# Shard 0 is requeued below once it has a checkpoint: small blocks with a pause after each
# (QBAT_INJECT_FAULT=slow-blocks, a test hook) give a window of a few seconds for that.
QBAT=$qbat QBAT_CONFIG=$here/study.toml QBAT_OUT_ROOT=$root QBAT_BACKEND=$backend \
    QBAT_ARGS="--block-members 250" QBAT_INJECT_FAULT=slow-blocks=1500 \
    "$here/submit.sh" --cpus-per-task=1 | sed 's/^/  submit.sh: /'
# shellcheck disable=SC1091
source "$root/jobs.env"
jobs_to_cancel=("$QBAT_ARRAY_JOB" "$QBAT_MERGE_JOB")

timeout=${QBAT_SLURM_TIMEOUT:-900}
deadline=$(( $(date +%s) + timeout ))
for _ in $(seq 1 600); do
    [[ -f $root/shards/.shard-0.partial/checkpoint.json || -f $root/shards/shard-0/run.json ]] && break
    (( $(date +%s) < deadline )) || fail "shard 0 wrote no checkpoint"
    [[ -n $(squeue -h -j "${QBAT_ARRAY_JOB}_0" 2>/dev/null) ]] ||
        fail "shard 0 ended without a checkpoint: $(cat "$root"/logs/qbat-shards-*_0.log 2>/dev/null)"
    sleep 0.2
done
[[ -f $root/shards/shard-0/run.json ]] && fail "shard 0 finished before it could be requeued"
scontrol requeue "${QBAT_ARRAY_JOB}_0"
say "requeued task ${QBAT_ARRAY_JOB}_0 after its first checkpointed block"

last=
while [[ -n $(squeue -h -j "$QBAT_ARRAY_JOB,$QBAT_MERGE_JOB" 2>/dev/null) ]]; do
    (( $(date +%s) < deadline )) || fail "the jobs did not finish within ${timeout} s"
    now=$(squeue -h -j "$QBAT_ARRAY_JOB,$QBAT_MERGE_JOB" -o '%i %T %r' | sort | tr '\n' ' ')
    [[ $now != "$last" ]] && say "squeue: $now"
    last=$now
    [[ $now == *DependencyNeverSatisfied* ]] && fail "a shard failed, so the merge cannot run: $(tail -n 3 "$root"/logs/*.log)"
    sleep 1
done
say "jobs finished"
grep -h '^device' "$root"/logs/qbat-shards-*.log | sort | uniq -c | sed 's/^ */  shards: /'
grep -h -E '^(qbat merge|output)' "$root"/logs/qbat-merge-*.log | sed 's/^/  merge: /'

for k in 0 1 2 3; do
    [[ -f $root/shards/shard-$k/run.json ]] || fail "shard $k has no output: $(tail -n 5 "$root"/logs/qbat-shards-*_"$k".log)"
done
[[ -f $root/merged/run.json ]] || fail "no merged output: $(tail -n 5 "$root"/logs/qbat-merge-*.log)"
log0=$(ls "$root"/logs/qbat-shards-*_0.log)
grep -q '^resuming the interrupted run' "$log0" || fail "the requeued shard 0 did not resume: $(cat "$log0")"
resumed=$(grep -Eo '"resumed": *[0-9]+' "$root/shards/shard-0/run.json" | grep -Eo '[0-9]+$')
(( resumed >= 1 )) || fail "shard 0 reports $resumed resumed blocks"
say "shard 0 ran twice and continued from its checkpoint ($resumed of 4 blocks resumed):"
grep -E '^(qbat shard|resuming|blocks|output)' "$log0" | sed 's/^/  /'

# -- 5. the same study, unsharded, with the same binary --------------------------------------------
# With the default block size (two blocks of 2,000 members here), unlike the shards' 250.
say "running the study unsharded"
"$qbat" run "$root/study.toml" --backend "$backend" --no-progress --out "$work/whole" >"$work/log/whole.out" 2>&1 ||
    fail "the unsharded run failed: $(tail -n 5 "$work/log/whole.out")"
for f in series.csv summary.csv stats.csv; do
    cmp "$root/merged/$f" "$work/whole/$f" || fail "merged $f differs from the unsharded run's"
    say "identical: merged/$f == unsharded/$f ($(wc -c <"$work/whole/$f") bytes)"
done
status=PASS
say "PASS: 4 Slurm array shards (one requeued and resumed) merged == the unsharded run, bit for bit"
