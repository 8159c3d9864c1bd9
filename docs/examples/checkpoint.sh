#!/usr/bin/env bash
# A program that follows hpcx's checkpoint contract (docs/checkpoint.md), in bash alone.
#
#   checkpoint.sh [TOTAL]      count TOTAL steps (default 100), one every $STEP_SECONDS (0.1)
#
# On $HPCX_CHECKPOINT_SIGNAL (USR1 ahead of the time limit) or TERM (preemption) it saves its
# counter in $HPCX_CHECKPOINT_DIR and exits 0; started again (the next attempt) it resumes
# from the counter. Each step is reported once through the metrics protocol ($HPCX_METRICS).
# Outside hpcx it keeps its counter in ./checkpoint: try `kill -USR1 <pid>` and start it again.
set -u

total=${1:-100}
pause=${STEP_SECONDS:-0.1}
dir=${HPCX_CHECKPOINT_DIR:-${HPCX_RUN_DIR:-.}/checkpoint}
sig=${HPCX_CHECKPOINT_SIGNAL:-USR1}
sig=${sig#SIG}
metrics=${HPCX_METRICS:-/dev/null}

# The traps only note the signal. No subprocess in a trap: on preemption SLURM sends TERM to
# every process of the job, and a child started now could be killed by it half done.
stop=""
trap 'stop=$sig' "$sig"
trap 'stop=TERM' TERM

save() {  # the counter, whole or not at all: a temporary file renamed over the old one
    printf '%d\n' "$1" > "$dir/.counter.tmp" && mv -f "$dir/.counter.tmp" "$dir/counter"
}

mkdir -p "$dir"
step=0
if [[ -f $dir/counter ]]; then
    read -r step < "$dir/counter"
    echo "attempt ${HPCX_ATTEMPT:-1}: resuming at step $step" >&2
fi
if (( step >= total )); then
    exit 0  # an earlier attempt finished just as the signal came: nothing is left to do
fi

while (( step < total )); do
    # One step of work. `wait` returns as soon as a trapped signal arrives (a foreground
    # command would hold the trap back until it ended).
    sleep "$pause" &
    if wait $!; then
        printf -v now '%(%s)T' -1
        printf '{"name":"count","value":%d,"step":%d,"time":%s}\n' \
            "$step" "$step" "$now" >> "$metrics"
        step=$((step + 1))
    else
        kill $! 2>/dev/null  # interrupted: this step is not done and is done again later
    fi
    if [[ -n $stop ]]; then
        save "$step"
        echo "attempt ${HPCX_ATTEMPT:-1}: SIG$stop at step $step: saved, exiting" >&2
        exit 0
    fi
done
save "$step"
printf '{"name":"steps_total","value":%d}\n' "$total" >> "$metrics"
