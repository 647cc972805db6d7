#!/usr/bin/env bash
# A one-node SLURM on this machine with a declared (fake) GPU, for the integration tests:
#   bash scripts/slurm-local.sh start   # install slurm-wlm + munge if missing, configure, start the daemons
#   bash scripts/slurm-local.sh stop    # stop slurmd, slurmctld and munged
# Needs root and Debian's apt. Follows ../shared/slurm-local.md; partition "debug", GRES gpu:fake:1.
set -euo pipefail
action="${1:-start}"
stop() {
    for daemon in slurmd slurmctld munged; do
        pkill -x "$daemon" 2>/dev/null || true
    done
}
if [ "$action" = stop ]; then
    stop
    exit 0
fi
if ! command -v slurmctld >/dev/null || ! command -v munged >/dev/null; then
    echo "installing slurm-wlm and munge" >&2
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq slurm-wlm munge >/dev/null
fi
if sinfo -h -o %t 2>/dev/null | grep -q idle; then
    exit 0  # already up
fi
stop
mkdir -p /etc/slurm /var/spool/slurmctld /var/spool/slurmd /var/log/slurm /run/munge
[ -f /etc/munge/munge.key ] || dd if=/dev/urandom bs=1 count=1024 of=/etc/munge/munge.key 2>/dev/null
chown munge:munge /etc/munge/munge.key /run/munge
chmod 400 /etc/munge/munge.key
su -s /bin/sh munge -c /usr/sbin/munged
host="$(hostname -s)"
cat > /etc/slurm/slurm.conf <<CONF
ClusterName=local
SlurmctldHost=$host
SlurmUser=root
AuthType=auth/munge
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
ReturnToService=2
SelectType=select/cons_tres
StateSaveLocation=/var/spool/slurmctld
SlurmdSpoolDir=/var/spool/slurmd
SlurmctldLogFile=/var/log/slurm/slurmctld.log
SlurmdLogFile=/var/log/slurm/slurmd.log
GresTypes=gpu
NodeName=$host CPUs=$(nproc) RealMemory=4000 Gres=gpu:fake:1 State=UNKNOWN
PartitionName=debug Nodes=$host Default=YES MaxTime=INFINITE State=UP
# start a batch job at the next scheduler tick (<= 1 s), not after the default 3 s batching delay
SchedulerParameters=batch_sched_delay=0
CONF
echo "NodeName=$host Name=gpu Type=fake File=/dev/null" > /etc/slurm/gres.conf
slurmctld
slurmd
for _ in $(seq 30); do
    if sinfo -h -o %t 2>/dev/null | grep -q idle; then
        exit 0
    fi
    sleep 1
done
echo "SLURM did not come up; see /var/log/slurm/" >&2
exit 1
