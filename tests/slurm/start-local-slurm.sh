#!/usr/bin/env bash
# Bring up a real one-node SLURM cluster on localhost for the integration test.
#
# Debian 12 (bookworm) packages (slurm-wlm 22.05, munge), run as root, no systemd needed.
# Adapted from the project's notes (../shared/notes/local-slurm/). Daemons run in the
# foreground (-D / -F) in the background; their PIDs go to $LOCAL_SLURM_STATE/*.pid so that
# stop-local-slurm.sh stops exactly those and nothing else. Rerunning it while the daemons are
# up only re-checks them.
#
# Exit status: 0 = cluster up; 3 = SLURM cannot be installed or started here (not root, no
# apt, install failed, a foreign SLURM already owns the ports or /etc/slurm): callers skip;
# anything else = a bug in this script or a broken cluster.
#
# Environment:
#   LOCAL_SLURM_STATE=/tmp/hrsa-local-slurm  pid files, daemon output, apt log, timings
#   LOCAL_SLURM_GPUS=2                        fake GPUs (gres backed by char devices), 0..4
#   LOCAL_SLURM_ACCOUNTING=none|dbd           none (default, light: status via squeue) or
#                                             slurmdbd + MariaDB (sacct works)
#   LOCAL_SLURM_PARTITION=debug
#   LOCAL_SLURM_FORCE=1                       overwrite an /etc/slurm/slurm.conf not written here
set -euo pipefail

STATE=${LOCAL_SLURM_STATE:-/tmp/hrsa-local-slurm}
NGPU=${LOCAL_SLURM_GPUS:-2}
ACCT=${LOCAL_SLURM_ACCOUNTING:-none}
PART=${LOCAL_SLURM_PARTITION:-debug}
CLUSTER=hrsalocal
DB_PASS=hrsa-local-only
MARKER="# written by hrsa tests/slurm/start-local-slurm.sh"

log() { echo "[local-slurm $(date +%T)] $*"; }
skip() { echo "[local-slurm] CANNOT RUN SLURM HERE: $*" >&2; exit 3; }
die() { echo "[local-slurm] ERROR: $*" >&2; exit 1; }

[ "$(id -u)" = 0 ] || skip "must run as root (installs packages, runs slurmctld/slurmd)"
case "$ACCT" in none|dbd) ;; *) die "LOCAL_SLURM_ACCOUNTING must be none or dbd";; esac
case "$NGPU" in [0-4]) ;; *) die "LOCAL_SLURM_GPUS must be 0..4";; esac
mkdir -p "$STATE"
T0=$SECONDS

# pid file NAME holds a live process whose command line contains BINARY
alive() {
  local pf="$STATE/$1.pid" pid
  [ -s "$pf" ] || return 1
  pid=$(cat "$pf")
  kill -0 "$pid" 2>/dev/null || return 1
  tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q -- "$2"
}
wait_for() {  # SECONDS WHAT CMD...
  local end=$((SECONDS + $1)) what=$2; shift 2
  until "$@" >/dev/null 2>&1; do
    [ $SECONDS -lt "$end" ] || return 1
    sleep 0.5
  done
}
start_bg() {  # NAME BINARY CMD...
  local name=$1 bin=$2; shift 2
  if alive "$name" "$bin"; then log "$name already running (pid $(cat "$STATE/$name.pid"))"; return; fi
  nohup "$@" >"$STATE/$name.out" 2>&1 </dev/null &
  echo $! >"$STATE/$name.pid"
  log "started $name (pid $!)"
}

# ---------------------------------------------------------------- 1. packages
PKGS="slurmctld slurmd slurm-client munge"
[ "$ACCT" = dbd ] && PKGS="$PKGS slurmdbd mariadb-server"
missing=""
for p in $PKGS; do dpkg -s "$p" >/dev/null 2>&1 || missing="$missing $p"; done
if [ -n "$missing" ]; then
  command -v apt-get >/dev/null || skip "packages missing ($missing) and no apt-get"
  log "installing:$missing (apt-get; about 15-25 s on a fresh Debian 12)"
  export DEBIAN_FRONTEND=noninteractive
  # policy-rc.d keeps the packages' init scripts from starting daemons we did not ask for
  had_policy=0; [ -e /usr/sbin/policy-rc.d ] && had_policy=1
  [ $had_policy = 1 ] || printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
  chmod +x /usr/sbin/policy-rc.d
  ok=1
  apt-get install -y --no-install-recommends $missing >"$STATE/apt.log" 2>&1 \
    || { apt-get update >>"$STATE/apt.log" 2>&1 \
         && apt-get install -y --no-install-recommends $missing >>"$STATE/apt.log" 2>&1; } \
    || ok=0
  [ $had_policy = 1 ] || rm -f /usr/sbin/policy-rc.d
  [ $ok = 1 ] || { tail -15 "$STATE/apt.log" >&2; skip "apt-get install$missing failed"; }
fi
T_PKG=$((SECONDS - T0))
log "packages ready (${T_PKG}s)"

# ---------------------------------------------------------------- 2. a foreign SLURM?
if [ -e /etc/slurm/slurm.conf ] && ! grep -qF "$MARKER" /etc/slurm/slurm.conf \
   && [ "${LOCAL_SLURM_FORCE:-0}" != 1 ]; then
  skip "/etc/slurm/slurm.conf exists and was not written by this script (LOCAL_SLURM_FORCE=1 overrides)"
fi
if ! alive slurmctld /usr/sbin/slurmctld && scontrol ping 2>/dev/null | grep -q UP; then
  skip "a slurmctld not started by this script is already answering"
fi

# ---------------------------------------------------------------- 3. configuration
NODE=$(hostname -s)
HW=$(slurmd -C | head -1)                      # real topology of this machine
REALMEM=$(sed -n 's/.*RealMemory=\([0-9]*\).*/\1/p' <<<"$HW")
MEM=$((REALMEM * 85 / 100))                    # a node announcing more than it has goes INVAL
TOPO=$(sed -e 's/^NodeName=[^ ]* //' -e 's/ RealMemory=[0-9]*//' -e 's/ UpTime=.*//' <<<"$HW")
GRES_NODE=""; GRES_TYPES=""
if [ "$NGPU" -gt 0 ]; then GRES_NODE=" Gres=gpu:$NGPU"; GRES_TYPES="GresTypes=gpu"; fi
if [ "$ACCT" = dbd ]; then
  ACCT_CONF="AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=localhost
AccountingStoragePort=6819
AccountingStorageTRES=gres/gpu
JobAcctGatherType=jobacct_gather/linux
JobAcctGatherFrequency=30"
else
  ACCT_CONF="AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none"
fi
mkdir -p /etc/slurm /var/spool/slurmctld /var/spool/slurmd /var/log/slurm /run/slurm

# KillWait=5: a job over its time limit gets SIGTERM, then SIGKILL 5 s later (default 30 s).
# MinJobAge=300: finished jobs stay visible to squeue for 5 minutes (the executor plugin's
# squeue status checks rely on it). DefMemPerCPU: without it a job takes the whole node.
NEWCONF=$(cat <<EOF
$MARKER - single node, localhost only
ClusterName=$CLUSTER
SlurmctldHost=$NODE(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
MpiDefault=none
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
ReturnToService=2
MailProg=/bin/true
SlurmctldPidFile=/run/slurm/slurmctld.pid
SlurmdPidFile=/run/slurm/slurmd.pid
SlurmctldPort=6817
SlurmdPort=6818
StateSaveLocation=/var/spool/slurmctld
SlurmdSpoolDir=/var/spool/slurmd
SlurmctldLogFile=/var/log/slurm/slurmctld.log
SlurmdLogFile=/var/log/slurm/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
DefMemPerCPU=1000
MinJobAge=300
KillWait=5
$ACCT_CONF
$GRES_TYPES
NodeName=$NODE NodeAddr=127.0.0.1 $TOPO RealMemory=$MEM$GRES_NODE State=UNKNOWN
PartitionName=$PART Nodes=ALL Default=YES MaxTime=INFINITE State=UP
EOF
)
CONF_CHANGED=0
if [ "$(cat /etc/slurm/slurm.conf 2>/dev/null)" != "$NEWCONF" ]; then
  printf '%s\n' "$NEWCONF" >/etc/slurm/slurm.conf
  CONF_CHANGED=1
fi
# Fake GPUs: gres/gpu needs File= pointing at character devices, else the node goes INVAL.
# SLURM then sets CUDA_VISIBLE_DEVICES for jobs that ask for GPUs; torch finds no CUDA driver
# and the workflow's device=auto falls back to the CPU.
DEVS=(/dev/null /dev/zero /dev/full /dev/urandom)
{
  echo "$MARKER"
  echo "AutoDetect=off"
  if [ "$NGPU" -gt 0 ]; then
    echo "NodeName=$NODE Name=gpu File=$(IFS=,; echo "${DEVS[*]:0:$NGPU}")"
  fi
} >/etc/slurm/gres.conf
if [ "$ACCT" = dbd ]; then
  cat >/etc/slurm/slurmdbd.conf <<EOF
AuthType=auth/munge
DbdHost=localhost
DbdAddr=127.0.0.1
DbdPort=6819
SlurmUser=root
DebugLevel=info
LogFile=/var/log/slurm/slurmdbd.log
PidFile=/run/slurm/slurmdbd.pid
StorageType=accounting_storage/mysql
StorageHost=localhost
StorageUser=slurm
StoragePass=$DB_PASS
StorageLoc=slurm_acct_db
EOF
  chmod 600 /etc/slurm/slurmdbd.conf
fi
log "config: node $NODE, $TOPO, RealMemory=$MEM, gpus=$NGPU, accounting=$ACCT"

# ---------------------------------------------------------------- 4. munge
mkdir -p /run/munge /var/log/munge /var/lib/munge /etc/munge
chown munge:munge /run/munge /var/log/munge /var/lib/munge /etc/munge
chmod 755 /run/munge
if [ ! -s /etc/munge/munge.key ]; then
  setpriv --reuid=munge --regid=munge --init-groups mungekey --create --keyfile=/etc/munge/munge.key
fi
if ! alive munged /usr/sbin/munged && munge -n 2>/dev/null | unmunge >/dev/null 2>&1; then
  log "a munged not started here is already serving; using it (it will not be stopped)"
else
  start_bg munged /usr/sbin/munged setpriv --reuid=munge --regid=munge --init-groups /usr/sbin/munged -F
fi
wait_for 20 munge bash -c 'munge -n | unmunge' || skip "munged did not come up (see $STATE/munged.out)"

# ---------------------------------------------------------------- 5. accounting (optional)
if [ "$ACCT" = dbd ]; then
  mkdir -p /run/mysqld; chown mysql:mysql /run/mysqld
  if [ ! -d /var/lib/mysql/mysql ]; then
    mariadb-install-db --user=mysql --datadir=/var/lib/mysql >"$STATE/mariadb-install-db.log" 2>&1
  fi
  start_bg mariadb /usr/sbin/mariadbd /usr/sbin/mariadbd --user=mysql --skip-networking \
    --socket=/run/mysqld/mysqld.sock --pid-file=/run/mysqld/mysqld.pid
  wait_for 60 mariadb mariadb-admin --socket=/run/mysqld/mysqld.sock ping \
    || skip "mariadb did not come up (see $STATE/mariadb.out)"
  mariadb --socket=/run/mysqld/mysqld.sock -e "CREATE DATABASE IF NOT EXISTS slurm_acct_db;
    CREATE USER IF NOT EXISTS 'slurm'@'localhost' IDENTIFIED BY '$DB_PASS';
    GRANT ALL ON slurm_acct_db.* TO 'slurm'@'localhost'; FLUSH PRIVILEGES;"
  start_bg slurmdbd /usr/sbin/slurmdbd /usr/sbin/slurmdbd -D
  wait_for 60 slurmdbd sacctmgr -n list cluster || skip "slurmdbd did not come up"
fi

# ---------------------------------------------------------------- 6. slurmctld + slurmd
if [ "$CONF_CHANGED" = 1 ]; then
  for n in slurmd slurmctld; do
    if alive $n /usr/sbin/$n; then
      log "slurm.conf changed: restarting $n"
      pid=$(cat "$STATE/$n.pid"); kill "$pid"
      for _ in $(seq 1 80); do kill -0 "$pid" 2>/dev/null || break; sleep 0.25; done
      kill -0 "$pid" 2>/dev/null && kill -KILL "$pid"
      rm -f "$STATE/$n.pid"
    fi
  done
fi
start_bg slurmctld /usr/sbin/slurmctld /usr/sbin/slurmctld -D
wait_for 60 slurmctld scontrol ping \
  || { tail -5 /var/log/slurm/slurmctld.log >&2; skip "slurmctld did not answer"; }
start_bg slurmd /usr/sbin/slurmd /usr/sbin/slurmd -D
end=$((SECONDS + 60))
while :; do  # the node must register; clear a DRAIN/DOWN left in the saved state
  st=$(sinfo -h -n "$NODE" -o %T 2>/dev/null || true)
  case "$st" in
    idle|mixed|allocated|completing) break;;
    *drain*|*down*|*inval*|*fail*) scontrol update nodename="$NODE" state=resume >/dev/null 2>&1 || true;;
  esac
  [ $SECONDS -lt $end ] || { tail -5 /var/log/slurm/slurmctld.log >&2; skip "node $NODE not idle (state '$st')"; }
  sleep 0.5
done
T_ALL=$((SECONDS - T0))
printf 'packages_s=%s\nup_s=%s\n' "$T_PKG" "$T_ALL" >"$STATE/timings"
log "SLURM up in ${T_ALL}s (packages ${T_PKG}s): $(sinfo -h -o '%P %a %D %T %N cpus=%c gres=%G')"
