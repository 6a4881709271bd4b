#!/usr/bin/env bash
# Stop the daemons that start-local-slurm.sh started: by the PIDs in $LOCAL_SLURM_STATE/*.pid
# only, never by name. Jobs still queued or running on the test cluster are cancelled first so
# that no slurmstepd outlives slurmd.
set -uo pipefail
STATE=${LOCAL_SLURM_STATE:-/tmp/hrsa-local-slurm}
log() { echo "[local-slurm $(date +%T)] $*"; }

ours() {  # NAME BINARY: the pid file holds a live process running BINARY
  local pf="$STATE/$1.pid" pid
  [ -s "$pf" ] || return 1
  pid=$(cat "$pf")
  kill -0 "$pid" 2>/dev/null && tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q -- "$2"
}

if ours slurmctld /usr/sbin/slurmctld; then
  jobs=$(squeue -h -t PENDING,RUNNING,SUSPENDED,COMPLETING -o %A 2>/dev/null | sort -u | tr '\n' ' ')
  if [ -n "${jobs// }" ]; then
    log "cancelling jobs: $jobs"
    # shellcheck disable=SC2086
    scancel $jobs 2>/dev/null
    for _ in $(seq 1 40); do
      [ -z "$(squeue -h -t RUNNING,COMPLETING -o %A 2>/dev/null)" ] && break
      sleep 0.25
    done
  fi
fi

stop_one() {  # NAME BINARY
  local pf="$STATE/$1.pid" pid
  [ -s "$pf" ] || return 0
  pid=$(cat "$pf")
  if ours "$1" "$2"; then
    kill -TERM "$pid"
    for _ in $(seq 1 60); do kill -0 "$pid" 2>/dev/null || break; sleep 0.25; done
    if kill -0 "$pid" 2>/dev/null; then log "$1 (pid $pid) ignored TERM: KILL"; kill -KILL "$pid"; fi
    log "stopped $1 (pid $pid)"
  else
    log "$1 (pid $pid) was not running"
  fi
  rm -f "$pf"
}
stop_one slurmd /usr/sbin/slurmd
stop_one slurmctld /usr/sbin/slurmctld
stop_one slurmdbd /usr/sbin/slurmdbd
stop_one mariadb /usr/sbin/mariadbd
stop_one munged /usr/sbin/munged
exit 0
