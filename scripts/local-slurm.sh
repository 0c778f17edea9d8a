#!/usr/bin/env bash
# A one-node SLURM cluster on this machine, to try `snakemake --profile profiles/slurm` on a
# workstation and to run the cluster tests (tests/cluster/) in CI. Debian or Ubuntu, as root.
#
#   scripts/local-slurm.sh start    install slurm-wlm and munge if missing, write the config,
#                                   start munged, slurmctld and slurmd; wait for the node
#   scripts/local-slurm.sh stop     cancel every job of this cluster and stop the daemons
#   scripts/local-slurm.sh status   the daemons and the partitions
#
# start and stop are idempotent: `start` on a running cluster with an unchanged config does
# nothing; with a changed one (say, more memory) it restarts the daemons. The config names the
# profile's partitions: `cpu` (the default) and `gpu`, both on this node. Without a GPU the node
# advertises LOCAL_SLURM_GPUS (default 2) stand-in GPUs, so that jobs asking for `--gpus=1` are
# scheduled as on a real cluster; they still compute on the CPU.
# Accounting is off (accounting_storage/none), as on many small clusters: `sacct` sees nothing,
# so Snakemake must poll with `squeue` (--slurm-status-command squeue), which shows a finished
# job for MinJobAge = 3600 s.
set -euo pipefail

CONF_DIR=/etc/slurm
CONF=$CONF_DIR/slurm.conf
GRES_CONF=$CONF_DIR/gres.conf
MARKER="# Written by vlmsae scripts/local-slurm.sh; rewritten by its next start."
STATE_DIR=/var/spool/slurmctld
SPOOL_DIR=/var/spool/slurmd
LOG_DIR=/var/log/slurm
RUN_DIR=/run/slurm
MUNGE_KEY=/etc/munge/munge.key
MUNGE_PID=/run/munge/munged.pid
CTLD_PID=$RUN_DIR/slurmctld.pid
SLURMD_PID=$RUN_DIR/slurmd.pid
NODE=$(hostname -s)

say() { echo "local-slurm: $*"; }
die() {
    echo "local-slurm: $*" >&2
    exit 1
}

install_packages() {
    local tool
    for tool in slurmctld slurmd munged; do
        command -v "$tool" >/dev/null || break
    done
    command -v "$tool" >/dev/null && return 0
    [ "$(id -u)" = 0 ] || die "slurm-wlm and munge are missing; run as root to install them"
    command -v apt-get >/dev/null || die "slurm-wlm and munge are missing and there is no apt-get"
    say "installing slurm-wlm and munge"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq slurm-wlm munge >/dev/null
}

running() { # pid file -> status 0 when its process is alive
    [ -s "$1" ] && kill -0 "$(cat "$1" 2>/dev/null)" 2>/dev/null
}

# Start a daemon unless its pid file names a live process; it forks, so wait for the new pid file.
start_daemon() { # pid file, log file, command...
    local pid_file=$1 log_file=$2
    shift 2
    running "$pid_file" && return 0
    rm -f "$pid_file"
    "$@"
    for _ in $(seq 50); do
        running "$pid_file" && return 0
        sleep 0.2
    done
    die "$1 did not start: $(tail -n 1 "$log_file")"
}

FAKE_GPU_DIR=$RUN_DIR/fake-gpu

# The GPU device files the node advertises: this machine's, or else LOCAL_SLURM_GPUS stand-ins.
# slurmd accepts a GPU only with a character device behind it; a stand-in is a node with
# /dev/null's numbers (1, 3), so a job that opens it reads nothing and computes on the CPU.
gpu_files() {
    if compgen -G "/dev/nvidia[0-9]*" >/dev/null; then
        compgen -G "/dev/nvidia[0-9]*" | sort -V
        return
    fi
    local index
    mkdir -p "$FAKE_GPU_DIR"
    for index in $(seq 0 $((${LOCAL_SLURM_GPUS:-2} - 1))); do
        [ -c "$FAKE_GPU_DIR/gpu$index" ] || mknod "$FAKE_GPU_DIR/gpu$index" c 1 3
        echo "$FAKE_GPU_DIR/gpu$index"
    done
}

# The node line from what slurmd detects; RealMemory at 90 % of it, so the daemons and the
# submitting Snakemake keep some (a node whose config claims more memory than it has is drained).
node_line() {
    local detected memory gpus
    detected=$(slurmd -C | head -n 1)
    memory=$(sed -n 's/.*RealMemory=\([0-9]*\).*/\1/p' <<<"$detected")
    gpus=$(gpu_files | wc -l)
    sed -e "s/RealMemory=[0-9]*/RealMemory=$((memory * 9 / 10))/" \
        -e "s/^NodeName=[^ ]*/NodeName=$NODE NodeAddr=127.0.0.1/" \
        -e "s/\$/ Gres=gpu:$gpus State=UNKNOWN/" <<<"$detected"
}

write_config() { # -> status 0 when slurm.conf or gres.conf changed
    if [ -e "$CONF" ] && ! grep -qF "$MARKER" "$CONF"; then
        die "$CONF exists and was not written by this script: not overwriting a cluster's config"
    fi
    mkdir -p "$CONF_DIR"
    local new_conf new_gres changed=1
    new_conf=$(
        cat <<EOF
$MARKER
ClusterName=vlmsae-local
SlurmctldHost=$NODE(127.0.0.1)
SlurmUser=slurm
AuthType=auth/munge
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
AccountingStorageType=accounting_storage/none
# Memory use is sampled every 2 s and a job over its --mem is killed (state OUT_OF_MEMORY), as on
# clusters that enforce memory limits.
JobAcctGatherType=jobacct_gather/linux
JobAcctGatherFrequency=task=2
JobAcctGatherParams=OverMemoryKill
GresTypes=gpu
# Finished jobs stay visible to squeue (Snakemake's status command without accounting) for an hour.
MinJobAge=3600
# A job is requeue-able by default: scontrol requeue and pre-emption put it back in the queue.
JobRequeue=1
# Seconds between SIGTERM and SIGKILL when a job is cancelled, requeued or pre-empted.
KillWait=30
ReturnToService=2
StateSaveLocation=$STATE_DIR
SlurmdSpoolDir=$SPOOL_DIR
SlurmctldPidFile=$CTLD_PID
SlurmdPidFile=$SLURMD_PID
SlurmctldLogFile=$LOG_DIR/slurmctld.log
SlurmdLogFile=$LOG_DIR/slurmd.log
$(node_line)
PartitionName=cpu Nodes=$NODE Default=YES MaxTime=INFINITE State=UP
PartitionName=gpu Nodes=$NODE MaxTime=INFINITE State=UP
EOF
    )
    new_gres="$MARKER
AutoDetect=off
$(gpu_files | sed 's/^/Name=gpu File=/')"
    if [ "$new_conf" != "$(cat "$CONF" 2>/dev/null)" ] ||
        [ "$new_gres" != "$(cat "$GRES_CONF" 2>/dev/null)" ]; then
        printf '%s\n' "$new_conf" >"$CONF"
        printf '%s\n' "$new_gres" >"$GRES_CONF"
        changed=0
    fi
    return "$changed"
}

start_munge() {
    if [ ! -s "$MUNGE_KEY" ]; then
        say "creating $MUNGE_KEY"
        mungekey --create --keyfile="$MUNGE_KEY"
        chown munge:munge "$MUNGE_KEY"
        chmod 0400 "$MUNGE_KEY"
    fi
    mkdir -p /run/munge
    chown munge:munge /run/munge
    start_daemon "$MUNGE_PID" /var/log/munge/munged.log runuser -u munge -- /usr/sbin/munged
    munge -n | unmunge >/dev/null || die "munge does not work; see /var/log/munge/munged.log"
}

start_slurm() {
    mkdir -p "$STATE_DIR" "$SPOOL_DIR" "$LOG_DIR" "$RUN_DIR"
    chown slurm:slurm "$STATE_DIR" "$LOG_DIR" "$RUN_DIR"
    start_daemon "$CTLD_PID" "$LOG_DIR/slurmctld.log" slurmctld
    start_daemon "$SLURMD_PID" "$LOG_DIR/slurmd.log" slurmd
}

stop_daemons() {
    local pid_file
    for pid_file in "$SLURMD_PID" "$CTLD_PID" "$MUNGE_PID"; do
        if running "$pid_file"; then
            kill "$(cat "$pid_file")"
            for _ in $(seq 50); do
                running "$pid_file" || break
                sleep 0.2
            done
        fi
    done
}

wait_for_node() {
    local state deadline=$((SECONDS + 60))
    while [ "$SECONDS" -lt "$deadline" ]; do
        running "$CTLD_PID" || die "slurmctld exited: $(tail -n 1 "$LOG_DIR/slurmctld.log")"
        running "$SLURMD_PID" || die "slurmd exited: $(tail -n 1 "$LOG_DIR/slurmd.log")"
        state=$(sinfo -h -n "$NODE" -o %t 2>/dev/null | head -n 1 || true)
        case "$state" in
        idle* | mix* | alloc*)
            say "node $NODE is up ($state); partitions: $(sinfo -h -o %P | tr '\n' ' ')"
            return
            ;;
        # A node first registered with another config (or killed mid-job) comes back drained.
        down* | drain* | drng*) scontrol update NodeName="$NODE" State=RESUME 2>/dev/null || true ;;
        esac
        sleep 1
    done
    die "node $NODE did not come up in 60 s: see $LOG_DIR/slurmctld.log and $LOG_DIR/slurmd.log"
}

start() {
    [ "$(id -u)" = 0 ] || die "start needs root (it writes $CONF and starts the daemons)"
    install_packages
    if write_config; then
        say "wrote $CONF and $GRES_CONF"
        stop_daemons
    fi
    start_munge
    start_slurm
    wait_for_node
}

stop() {
    if running "$CTLD_PID"; then
        squeue -h -o %i 2>/dev/null | xargs -r scancel 2>/dev/null || true
    fi
    stop_daemons
    say "stopped"
}

status() {
    local pid_file
    for pid_file in "$MUNGE_PID" "$CTLD_PID" "$SLURMD_PID"; do
        if running "$pid_file"; then
            say "$(basename "$pid_file" .pid) running"
        else
            say "$(basename "$pid_file" .pid) stopped"
        fi
    done
    if running "$CTLD_PID"; then sinfo; fi
}

case "${1:-}" in
start) start ;;
stop) stop ;;
status) status ;;
*) die "usage: $0 start|stop|status" ;;
esac
