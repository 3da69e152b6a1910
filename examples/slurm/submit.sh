#!/bin/bash
# Submit a sharded qbat-gpu study: the job array (array.sbatch), then the merge (merge.sbatch)
# with --dependency=afterok on the whole array.
#
#   QBAT=/path/to/qbat-gpu QBAT_CONFIG=study.toml QBAT_OUT_ROOT=/scratch/me/study \
#       examples/slurm/submit.sh [more sbatch options for the array, e.g. --array=0-15 --gres=gpu:1]
#
# The config is copied to $QBAT_OUT_ROOT/study.toml and every task runs that copy, so editing
# the config while jobs are queued changes nothing; submitting a different config into the same
# output root is refused. Logs go to $QBAT_OUT_ROOT/logs. The job ids are printed and written to
# $QBAT_OUT_ROOT/jobs.env.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
qbat=${QBAT:-qbat-gpu}
config=${QBAT_CONFIG:-$here/study.toml}
root=${QBAT_OUT_ROOT:-qbat-study}

# The jobs run in this directory too, but absolute paths survive a --chdir in the options.
[[ $qbat == */* ]] && qbat=$(realpath "$qbat")
if ! command -v "$qbat" >/dev/null; then
    echo "error: qbat-gpu binary '$qbat' not found; set QBAT to its path" >&2
    exit 2
fi
[[ -f $config ]] || { echo "error: config '$config' not found; set QBAT_CONFIG" >&2; exit 2; }
mkdir -p "$root/logs"
root=$(realpath "$root")

if [[ -f $root/study.toml ]] && ! cmp -s "$config" "$root/study.toml"; then
    echo "error: $root holds another study ($root/study.toml differs from $config);" \
         "use another QBAT_OUT_ROOT, or remove $root to start over" >&2
    exit 2
fi
cp "$config" "$root/study.toml"

export QBAT=$qbat QBAT_CONFIG=$root/study.toml QBAT_OUT_ROOT=$root

array_job=$(sbatch --parsable --output="$root/logs/qbat-shards-%A_%a.log" "$@" "$here/array.sbatch")
array_job=${array_job%%;*}
merge_job=$(sbatch --parsable --output="$root/logs/qbat-merge-%j.log" \
    --dependency="afterok:$array_job" "$here/merge.sbatch")
merge_job=${merge_job%%;*}

printf 'QBAT_ARRAY_JOB=%s\nQBAT_MERGE_JOB=%s\n' "$array_job" "$merge_job" >"$root/jobs.env"
echo "array job $array_job: shards -> $root/shards (logs in $root/logs)"
echo "merge job $merge_job (after the whole array succeeds) -> $root/merged"
