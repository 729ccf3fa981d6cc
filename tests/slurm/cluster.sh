#!/bin/sh
# A private single-node Slurm for tests/test_slurm.c: munged (as the munge
# user) + slurmctld + slurmd under DIR, on ports of their own, nothing
# system-wide touched. Clients use SLURM_CONF=DIR/slurm.conf.
#   cluster.sh start DIR OWNER_PID   start; a watchdog stops it all when
#                                    OWNER_PID exits (even if it crashes)
#   cluster.sh stop DIR              stop every daemon started under DIR
set -u
cmd=$1 dir=$2

stop() {
  for p in slurmd slurmctld munged watchdog; do
    f="$dir/$p.pid"
    [ -s "$f" ] || continue
    pid=$(cat "$f")
    # only our own daemon: its command line names DIR (a recycled pid does not)
    if [ -r "/proc/$pid/cmdline" ] && tr '\0' ' ' <"/proc/$pid/cmdline" | grep -q "$dir"; then
      kill "$pid" 2>/dev/null
      for _ in 1 2 3 4 5 6 7 8 9 10; do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
      kill -9 "$pid" 2>/dev/null
    fi
    rm -f "$f"
  done
}

case "$cmd" in
stop) stop; exit 0 ;;
start) ;;
*) echo "usage: cluster.sh start DIR OWNER_PID | stop DIR" >&2; exit 2 ;;
esac
owner=$3
for b in munged slurmctld slurmd sbatch scontrol squeue; do
  command -v "$b" >/dev/null || { echo "missing: $b (apt-get install slurmctld slurmd slurm-client munge)"; exit 77; }
done
[ "$(id -u)" -eq 0 ] || { echo "needs root (SlurmUser=root)"; exit 77; }
[ -r /etc/munge/munge.key ] || { echo "missing /etc/munge/munge.key"; exit 77; }
mkdir -p "$dir/state" "$dir/spool" "$dir/munge"
chmod 0711 "$dir" && chown munge: "$dir/munge" && chmod 0755 "$dir/munge"
# munged as the munge user, its socket in a folder of its own
runuser -u munge -- munged --socket="$dir/munge/munge.sock" --pid-file="$dir/munge/munged.pid" \
  --log-file="$dir/munge/munged.log" --seed-file="$dir/munge/munged.seed" || { echo "munged failed"; exit 1; }
cp "$dir/munge/munged.pid" "$dir/munged.pid"
# ports from the owner's pid: concurrent test runs do not collide
base=$((20000 + (owner % 2000) * 2))
host=$(hostname -s)
cpus=$(nproc)
cat >"$dir/slurm.conf" <<CONF
ClusterName=hcltest
SlurmctldHost=$host(127.0.0.1)
SlurmUser=root
SlurmdUser=root
SlurmctldPort=$base
SlurmdPort=$((base + 1))
AuthType=auth/munge
AuthInfo=socket=$dir/munge/munge.sock
CredType=cred/munge
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
SchedulerType=sched/builtin
MpiDefault=none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
StateSaveLocation=$dir/state
SlurmdSpoolDir=$dir/spool
SlurmctldPidFile=$dir/slurmctld.pid
SlurmdPidFile=$dir/slurmd.pid
SlurmctldLogFile=$dir/slurmctld.log
SlurmdLogFile=$dir/slurmd.log
ReturnToService=2
MinJobAge=600
NodeName=$host NodeAddr=127.0.0.1 CPUs=$cpus State=UNKNOWN
PartitionName=hcl Nodes=ALL Default=YES MaxTime=INFINITE State=UP
CONF
export SLURM_CONF="$dir/slurm.conf"
slurmctld -f "$dir/slurm.conf" -i || { stop; echo "slurmctld failed: $(tail -3 "$dir/slurmctld.log")"; exit 1; }
slurmd -f "$dir/slurm.conf" || { stop; echo "slurmd failed: $(tail -3 "$dir/slurmd.log")"; exit 1; }
# the watchdog: stops everything once the owner is gone
( while kill -0 "$owner" 2>/dev/null; do sleep 1; done; "$0" stop "$dir" ) >/dev/null 2>&1 &
echo $! >"$dir/watchdog.pid"
# up: the node idle
for _ in $(seq 1 100); do
  sinfo -h -o %t 2>/dev/null | grep -q idle && exit 0
  sleep 0.2
done
echo "the node did not come up: $(sinfo -h 2>&1 | head -2) $(tail -3 "$dir/slurmd.log")"
stop
exit 1
