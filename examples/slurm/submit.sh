#!/bin/bash
# Submit a sharded qbat-gpu study: the job array (array.sbatch), then the merge (merge.sbatch)
# with --dependency=afterok on the whole array.
#
#   QBAT=/path/to/qbat-gpu QBAT_CONFIG=study.toml QBAT_OUT_ROOT=/scratch/me/study \
#       examples/slurm/submit.sh [more sbatch options for the array, e.g. --array=0-15 --gres=gpu:1]
#
# The config is copied to $QBAT_OUT_ROOT/study.toml and every task runs that copy, so editing
# the config while jobs are queued changes nothing. The config's sha256, the shard count and
# QBAT_ARGS are recorded in $QBAT_OUT_ROOT/study.stamp (as array.sbatch does): submitting a
# different config, shard count or QBAT_ARGS into the same output root is refused. Logs go to
# $QBAT_OUT_ROOT/logs. The job ids are printed and written to $QBAT_OUT_ROOT/jobs.env.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
qbat=${QBAT:-qbat-gpu}
config=${QBAT_CONFIG:-$here/study.toml}
root=${QBAT_OUT_ROOT:-qbat-study}

if ! command -v "$qbat" >/dev/null; then
    echo "error: qbat-gpu binary '$qbat' not found; set QBAT to its path" >&2
    exit 2
fi
# The jobs run in this directory too, but absolute paths survive a --chdir in the options.
[[ $qbat == */* ]] && qbat=$(realpath "$qbat")
[[ -f $config ]] || { echo "error: config '$config' not found; set QBAT_CONFIG" >&2; exit 2; }

# The shard count the tasks will use: QBAT_SHARDS, else the task count of the array (--array
# among the options, else SBATCH_ARRAY_INX, else array.sbatch's own #SBATCH --array).
spec=${SBATCH_ARRAY_INX:-$(sed -n 's/^#SBATCH --array=//p' "$here/array.sbatch")}
prev=
for a in "$@"; do
    case $a in
        --array=*) spec=${a#--array=} ;;
        -a?*) spec=${a#-a} ;;
    esac
    [[ $prev == --array || $prev == -a ]] && spec=$a
    prev=$a
done
# Tasks in an array spec: 0-15, 1,3,5-7, 0-15:2, each with an optional %limit.
count_tasks() {
    local n=0 part a b step parts
    IFS=, read -ra parts <<<"${1%%\%*}"
    for part in "${parts[@]}"; do
        step=1
        [[ $part == *:* ]] && { step=${part#*:}; part=${part%%:*}; }
        a=${part%%-*} b=${part#*-}
        [[ $a =~ ^[0-9]+$ && $b =~ ^[0-9]+$ && $step =~ ^[1-9][0-9]*$ ]] && (( b >= a )) || return 1
        n=$(( n + (b - a) / step + 1 ))
    done
    (( n > 0 )) && echo "$n"
}
if [[ -n ${QBAT_SHARDS:-} ]]; then
    shards=$QBAT_SHARDS
elif ! shards=$(count_tasks "$spec"); then
    echo "error: cannot count the tasks of the array '--array=$spec'; set QBAT_SHARDS to the number of shards" >&2
    exit 2
fi
# Word-split on purpose, as in array.sbatch.
# shellcheck disable=SC2206
extra=(${QBAT_ARGS:-})

mkdir -p "$root/logs"
root=$(realpath "$root")

# Whether the root's study may still run or has run: a finished shard, or one under way (its
# staging directory), or its array still in the queue (as squeue lists it; where squeue cannot
# be asked, as if it were). A root where nothing ran and nothing is queued (tasks refused at
# their options) takes this study whatever it recorded.
started() { compgen -G "$root/shards/shard-*/run.json" >/dev/null || compgen -G "$root/shards/.shard-*.partial" >/dev/null; }
queued() {
    local job listed
    job=$(sed -n 's/^QBAT_ARRAY_JOB=//p' "$root/jobs.env" 2>/dev/null) || return 1
    [[ -n $job ]] || return 1
    listed=$(squeue -h -o %F 2>/dev/null) || return 0
    grep -qx "$job" <<<"$listed"
}
taken() { started || queued; }
if [[ -f $root/study.toml ]] && ! cmp -s "$config" "$root/study.toml" && taken; then
    echo "error: $root holds another study ($root/study.toml differs from $config);" \
         "use another QBAT_OUT_ROOT, or remove $root to start over" >&2
    exit 2
fi
# The study of this root, as array.sbatch records and checks it.
stamp=$root/study.stamp
want=$(printf 'config %s\nshards %s\nargs %s' "$(sha256sum <"$config" | cut -d' ' -f1)" "$shards" "${extra[*]}")
if [[ -e $stamp ]]; then
    have=$(<"$stamp")
    field() { sed -n "s/^$1 //p" <<<"$2"; }
    what=
    if [[ $(field shards "$have") != "$(field shards "$want")" ]]; then
        what="it has $(field shards "$have") shards, not $shards"
    elif [[ $(field args "$have") != "$(field args "$want")" ]]; then
        what="its QBAT_ARGS are '$(field args "$have")', not '${extra[*]}'"
    elif [[ $have != "$want" ]]; then
        what="its config differs from $config"
    fi
    if [[ -n $what ]] && taken; then
        echo "error: $root holds another study ($what; see $stamp): use another QBAT_OUT_ROOT, or remove $root to start over" >&2
        exit 2
    fi
else
    for d in "$root"/shards/shard-*; do
        if [[ -f $d/run.json ]]; then
            echo "error: $root holds shards of an unrecorded study (no $stamp): use another QBAT_OUT_ROOT, or remove $root to start over" >&2
            exit 2
        fi
    done
fi

export QBAT=$qbat QBAT_CONFIG=$root/study.toml QBAT_OUT_ROOT=$root

# The record of the study and its config, in place before the array's tasks can start; a
# submission that sbatch refuses puts back what was there (nothing, where nothing was).
for f in "$root/study.toml" "$stamp"; do
    if [[ -e $f ]]; then cp -p "$f" "$f.before"; else rm -f "$f.before"; fi
done
cp "$config" "$root/study.toml"
printf '%s\n' "$want" >"$stamp"
array_job=$(sbatch --parsable --output="$root/logs/qbat-shards-%A_%a.log" "$@" "$here/array.sbatch") || {
    for f in "$root/study.toml" "$stamp"; do
        if [[ -e $f.before ]]; then mv -f "$f.before" "$f"; else rm -f "$f"; fi
    done
    exit 1
}
rm -f "$root/study.toml.before" "$stamp.before"
array_job=${array_job%%;*}
merge_job=$(sbatch --parsable --output="$root/logs/qbat-merge-%j.log" \
    --dependency="afterok:$array_job" "$here/merge.sbatch")
merge_job=${merge_job%%;*}

printf 'QBAT_ARRAY_JOB=%s\nQBAT_MERGE_JOB=%s\n' "$array_job" "$merge_job" >"$root/jobs.env"
echo "array job $array_job: shards -> $root/shards (logs in $root/logs)"
echo "merge job $merge_job (after the whole array succeeds) -> $root/merged"
