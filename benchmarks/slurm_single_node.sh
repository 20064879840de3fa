#!/usr/bin/env bash
# A real single-node Slurm cluster on this machine (Debian's slurm-wlm: munged + slurmctld + slurmd,
# started as root), then a sweep submitted to it with --launcher slurm: two worker jobs in one array
# job, one of them signalled as at its time limit while its run trains (submitit requeues it and its
# trial resumes from its checkpoint), the figures gathered with --report and compared with the same
# sweep run here without Slurm.
#
#   sudo apt-get install slurm-wlm      # once
#   bash benchmarks/slurm_single_node.sh [OUT]       (KEEP=1 leaves the daemons running)
#
# The daemons run from a private config (SLURM_CONF) with no cgroups (proctrack/linuxproc, task/none),
# so they start inside a container too; every file they write is under $STATE.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-/tmp/multinet-slurm-sweep}
STATE=${STATE:-/tmp/multinet-slurm}
HOST=$(hostname -s)
CPUS=$(nproc)
MEM=$(( $(awk '/MemTotal/ {print $2}' /proc/meminfo) / 1024 - 1024 ))
command -v slurmctld >/dev/null || { echo "no slurmctld: apt-get install slurm-wlm" >&2; exit 1; }
[ "$(id -u)" = 0 ] || { echo "run as root: the Slurm daemons and munged start here" >&2; exit 1; }

mkdir -p "$STATE"/{spool,state,log} /run/munge
export SLURM_CONF=$STATE/slurm.conf
cat > "$SLURM_CONF" <<EOF
ClusterName=multinet
SlurmctldHost=$HOST
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
ReturnToService=2
MpiDefault=none
StateSaveLocation=$STATE/state
SlurmdSpoolDir=$STATE/spool
SlurmctldPidFile=$STATE/slurmctld.pid
SlurmdPidFile=$STATE/slurmd.pid
SlurmctldLogFile=$STATE/log/slurmctld.log
SlurmdLogFile=$STATE/log/slurmd.log
NodeName=$HOST CPUs=$CPUS RealMemory=$MEM State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP
EOF
: > "$STATE/cgroup.conf"

stop() {
  [ "${KEEP:-0}" = 1 ] && { echo "daemons left running (SLURM_CONF=$SLURM_CONF)"; return; }
  for f in slurmd slurmctld; do [ -f "$STATE/$f.pid" ] && kill "$(cat "$STATE/$f.pid")" 2>/dev/null || true; done
  pkill -x munged 2>/dev/null || true
}
trap stop EXIT

chown munge:munge /run/munge
pgrep -x munged >/dev/null || runuser -u munge -- /usr/sbin/munged
slurmctld -f "$SLURM_CONF"
slurmd -f "$SLURM_CONF"
for _ in $(seq 60); do sinfo -h -o %t 2>/dev/null | grep -qx idle && break; sleep 1; done
sinfo
echo "Slurm $(sinfo -V | cut -d' ' -f2) up: node $HOST, $CPUS CPUs"

ITEMS=(autoencoder ae_2_2 eval.max_blocks=20000 eval.batch=20000 "channel.eval_db=[4.0]" --steps 600
       train.checkpoint_every=100 networks.decoder.lr=1e-3,3e-3 --seeds 0-1
       --objective "curves/autoencoder after 1_decoder/4" --direction minimize)
rm -rf "$OUT" "$OUT-here"
start=$(date +%s.%N)
python -m multinet sweep "${ITEMS[@]}" --out "$OUT" --launcher slurm --jobs 2 --slurm-time 10 \
  --slurm-cpus-per-job 1 --slurm-partition debug | tee "$OUT.submit.txt"
squeue
# One job is signalled as Slurm does 90 s before its time limit (submitit's --signal=USR2@90):
# its worker saves and stops, submitit requeues the job, and the trial resumes from its checkpoint.
for _ in $(seq 300); do ls "$OUT"/trials/*/seed-*/checkpoints/step_*.pt >/dev/null 2>&1 && break; sleep 0.2; done
job=$(squeue -h -t R -o %i | head -n1)
echo "signalling job $job (USR2, as at its time limit)"
scancel --signal=USR2 "$job"
sleep 5
echo "after the signal (job, state, reason, earliest start):"
squeue -h -o "%i %T %r %S"
for _ in $(seq 600); do [ -z "$(squeue -h)" ] && break; sleep 1; done
end=$(date +%s.%N)
sacct 2>/dev/null | head -5 || true
echo "--- the jobs' logs"
tail -n 4 "$OUT"/jobs/*/*_log.out
grep -h "SIGTERM\|Requeued\|resum" "$OUT"/jobs/*/*_log.* || true
python -m multinet sweep "${ITEMS[@]}" --out "$OUT" --report >/dev/null
python -m multinet sweep "${ITEMS[@]}" --out "$OUT-here" --jobs 2 >/dev/null
python - "$OUT" "$OUT-here" <<'EOF'
import csv, sys
def rows(folder):
    with open(f"{folder}/sweep.csv", newline="") as f:
        return sorted((r["param/networks.decoder.lr"], r["seed"], r["curves/autoencoder after 1_decoder/4"])
                      for r in csv.DictReader(f))
slurm, here = rows(sys.argv[1]), rows(sys.argv[2])
for r in slurm:
    print("slurm", *r)
print("figures equal to the sweep run without Slurm:", slurm == here, f"({len(slurm)} runs)")
EOF
python -c "print(f'submit to last job done: {float($end) - float($start):.1f} s')"
