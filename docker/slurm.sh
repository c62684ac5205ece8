#!/usr/bin/env bash
# A Slurm cluster on this one machine, for integration tests of `reprise run --slurm`: munged and
# slurmctld on the host, one slurmd per node, each node a test host of docker/testhosts.sh (a
# network namespace with its own dockerd), so that a node's jobs see that node's Docker engine.
# The namespaces share the host's files: the runs directory is the same on every node.
#
#   docker/slurm.sh up [NODE...]                make (or check) the cluster; idempotent
#   docker/slurm.sh down [--purge] [NODE...]    stop slurmctld, munged, every slurmd and what its
#                                               jobs left running, then the nodes' test hosts
#                                               (--purge: their state too)
#   docker/slurm.sh slurmd-stop [--kill] NODE   stop one node's slurmd (--kill: SIGKILL, a crash)
#   docker/slurm.sh status                      the daemons, and sinfo
#
# NODE defaults to "s1 s2" (never h1/h2, which the remote-host tests use). Names as for
# testhosts.sh; node NAME is host NAME (netns reprise-NAME, address 10.77.N.2).
# Installs Debian's slurm-wlm, munge and podman with apt when missing. STATE is
# ${REPRISE_SLURM_STATE:-/var/lib/reprise-slurm}:
#   munge/munge.key (one key for the cluster, owner munge, mode 400), munged's pid, log, seed;
#     its socket is /run/reprise-slurm/munge.socket (never the system's /run/munge);
#   slurm.conf (read through SLURM_CONF: /etc/slurm is not touched), task-prolog.sh;
#   slurmctld.pid/.log and ctld/ (its state); nodes/NODE/ (slurmd's spool, pid and log).
# slurmctld listens on port 6817 (the nodes reach it at the first node's host-side address,
# 10.77.N.1; Slurm 22.05 binds a given address only by the hostname's); each slurmd on
# its node's address (10.77.N.2:6818). Jobs are requeued only when they ask (JobRequeue=0;
# reprise's ask with --requeue), and start again 10 s after (cred_expire, 120 s by default); they
# stay known to scontrol for an hour after they end (MinJobAge); sacct reads the job completion log.
# The site's TaskProlog (task-prolog.sh) gives every task of node NAME
#   DOCKER_HOST=unix://<testhosts state>/NAME/docker.sock   (that node's engine, not the host's)
#   CONTAINERS_CONF, CONTAINERS_STORAGE_CONF=STATE/nodes/NAME/podman/*.conf (that node's Podman:
#                                                         its own storage, runc, this machine's limits)
#   GLOO_SOCKET_IFNAME=NCCL_SOCKET_IFNAME=rpn-NAME          (the namespaces share one hostname)
# The last line on stdout of `up` is SLURM_CONF=STATE/slurm.conf (export it for sinfo, sbatch,
# reprise). Progress goes to stderr. Must run as root. Stopping uses pid files only.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=docker/testhosts.sh
source "${HERE}/testhosts.sh"   # its functions: host_vars, pid_of, stop_tree, write_if_changed...

SSTATE="${REPRISE_SLURM_STATE:-/var/lib/reprise-slurm}"
CONF="${SSTATE}/slurm.conf"
PROLOG="${SSTATE}/task-prolog.sh"
MUNGE_DIR="${SSTATE}/munge"
MUNGE_KEY="${MUNGE_DIR}/munge.key"
MUNGE_RUN=/run/reprise-slurm
MUNGE_SOCK="${MUNGE_RUN}/munge.socket"
CTLD_PORT=6817
DEFAULT_NODES=(s1 s2)

say() { printf 'slurm: %s\n' "$*" >&2; }
die() { printf 'slurm: error: %s\n' "$*" >&2; exit 1; }

slurm_usage() {
  cat >&2 <<'EOF'
usage: docker/slurm.sh up [NODE...]
       docker/slurm.sh down [--purge] [NODE...]
       docker/slurm.sh slurmd-stop [--kill] NODE [NODE...]
       docker/slurm.sh status
NODE: as for docker/testhosts.sh (default: s1 s2). See the comment at the top of this script.
EOF
  exit 2
}

slurm_install() {
  local missing=()
  command -v slurmctld >/dev/null || missing+=(slurmctld)
  command -v slurmd >/dev/null || missing+=(slurmd)
  command -v sbatch >/dev/null || missing+=(slurm-client)
  command -v munged >/dev/null && command -v mungekey >/dev/null || missing+=(munge)
  command -v setpriv >/dev/null || missing+=(util-linux)
  command -v podman >/dev/null || missing+=(podman)
  [ ${#missing[@]} -gt 0 ] || return 0
  command -v apt-get >/dev/null || die "missing: ${missing[*]}, and no apt-get here. Install Slurm (slurmctld, slurmd, its client) and munge with your package manager."
  say "installing ${missing[*]} (apt-get)"
  # The packages' scripts must not start system-wide daemons with the system's configuration.
  local policy=/usr/sbin/policy-rc.d made_policy=0 rc=0
  if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' > "$policy"; chmod 755 "$policy"; made_policy=1
  fi
  export DEBIAN_FRONTEND=noninteractive
  { apt-get update -q >&2 && apt-get install -y -q --no-install-recommends "${missing[@]}" >&2; } || rc=$?
  [ "$made_policy" = 0 ] || rm -f "$policy"
  [ "$rc" = 0 ] || die "apt-get install ${missing[*]} failed (exit $rc); its output is above."
}

slurm_lock() {
  [ -d "$SSTATE" ] || install -d -m 755 "$SSTATE"
  exec 8>>"${SSTATE}/.lock"
  flock -w 600 8 || die "another slurm.sh holds ${SSTATE}/.lock for over 10 minutes"
}

# ---------------------------------------------------------------- munge

munged_pid() { pid_of "${MUNGE_DIR}/munged.pid" "$MUNGE_SOCK"; }

start_munge() {
  [ -d "$MUNGE_DIR" ] || install -d -m 700 -o munge -g munge "$MUNGE_DIR"
  if [ ! -s "$MUNGE_KEY" ]; then
    say "creating the cluster's munge key ${MUNGE_KEY}"
    mungekey --create --keyfile="$MUNGE_KEY" >&2
  fi
  chown munge:munge "$MUNGE_KEY"; chmod 400 "$MUNGE_KEY"
  [ -d "$MUNGE_RUN" ] || install -d -m 755 -o munge -g munge "$MUNGE_RUN"
  munged_pid >/dev/null && return 0
  rm -f "${MUNGE_DIR}/munged.pid"
  say "starting munged (socket ${MUNGE_SOCK}, log ${MUNGE_DIR}/munged.log)"
  setsid nohup setpriv --reuid=munge --regid=munge --init-groups \
    munged --foreground --socket="$MUNGE_SOCK" --key-file="$MUNGE_KEY" \
    --pid-file="${MUNGE_DIR}/munged.pid" --log-file="${MUNGE_DIR}/munged.log" \
    --seed-file="${MUNGE_DIR}/munged.seed" \
    >>"${MUNGE_DIR}/munged.out" 2>&1 </dev/null 8>&- 9>&- &
  local i
  for i in $(seq 1 50); do
    if munged_pid >/dev/null && [ -S "$MUNGE_SOCK" ]; then return 0; fi
    sleep 0.2
  done
  tail -n 20 "${MUNGE_DIR}/munged.log" "${MUNGE_DIR}/munged.out" >&2 2>/dev/null || true
  die "munged did not start; its log is above."
}

# ---------------------------------------------------------------- configuration

# podman_conf NODE: that node's Podman configuration folder (its own storage, as a real node's).
podman_conf() { echo "${SSTATE}/nodes/$1/podman"; }

# write_podman_conf NODE: containers.conf and storage.conf of node NODE's Podman. This machine
# needs runc (crun refuses its hybrid cgroups) and limits no higher than its own hard ones
# (podman's default nofile of 1048576 cannot be set here).
write_podman_conf() {
  local dir nofile nproc
  dir=$(podman_conf "$1")
  install -d -m 700 "$dir"
  nofile=$(ulimit -Hn); nproc=$(ulimit -Hu)
  [ "$nofile" != unlimited ] || nofile=1048576
  if [ "$nproc" = unlimited ] || [ "$nproc" -gt 32768 ]; then nproc=32768; fi
  write_if_changed "${dir}/containers.conf" 644 "# Written by reprise docker/slurm.sh: node $1's Podman.
[containers]
default_ulimits = [\"nofile=${nofile}:${nofile}\", \"nproc=${nproc}:${nproc}\"]

[engine]
runtime = \"runc\"
cgroup_manager = \"cgroupfs\"
events_logger = \"file\"
tmp_dir = \"/run/reprise-podman-$1/libpod\"" || true
  write_if_changed "${dir}/storage.conf" 644 "# Written by reprise docker/slurm.sh: node $1's Podman.
[storage]
driver = \"overlay\"
graphroot = \"${dir}/storage\"
runroot = \"/run/reprise-podman-$1/storage\"" || true
}

# podman_on NODE ARG...: podman as node NODE's tasks run it.
podman_on() {
  local dir
  dir=$(podman_conf "$1"); shift
  CONTAINERS_CONF="${dir}/containers.conf" CONTAINERS_STORAGE_CONF="${dir}/storage.conf" podman "$@"
}

# write_conf NODE...: slurm.conf and the task prolog for these nodes; CONF_CHANGED=1 if either changed.
write_conf() {
  local n cpus first_h="" nodes="" lines="" prolog hosts_base
  cpus=$(nproc)
  hosts_base="$BASE"
  prolog="#!/bin/sh
# Written by reprise docker/slurm.sh: a node's tasks use that node's Docker engine, Podman and interface.
case \"\$SLURMD_NODENAME\" in"
  for n in "$@"; do
    host_vars "$n"
    [ -n "$ADDR_N" ] || die "node ${n} has no address (is its test host up?)"
    [ -n "$first_h" ] || first_h=$ADDR_H
    nodes+="${nodes:+,}${n}"
    lines+="NodeName=${n} NodeAddr=${ADDR_N} CPUs=${cpus} RealMemory=1000 State=UNKNOWN"$'\n'
    prolog+="
  ${n}) echo 'export DOCKER_HOST=unix://${hosts_base}/${n}/docker.sock'
      echo 'export CONTAINERS_CONF=${SSTATE}/nodes/${n}/podman/containers.conf'
      echo 'export CONTAINERS_STORAGE_CONF=${SSTATE}/nodes/${n}/podman/storage.conf'
      echo 'export GLOO_SOCKET_IFNAME=${VETH_N}'
      echo 'export NCCL_SOCKET_IFNAME=${VETH_N}' ;;"
  done
  prolog+="
esac"
  CTLD_ADDR=$first_h
  CONF_CHANGED=0
  install -d -m 755 "${SSTATE}/ctld" "${SSTATE}/nodes"
  for n in "$@"; do [ -d "${SSTATE}/nodes/${n}" ] || install -d -m 755 "${SSTATE}/nodes/${n}"; done
  for n in "$@"; do write_podman_conf "$n"; done
  write_if_changed "$PROLOG" 755 "$prolog" && CONF_CHANGED=1 || true
  write_if_changed "$CONF" 644 "# Written by reprise docker/slurm.sh. Do not edit.
ClusterName=reprise
SlurmctldHost=$(hostname -s)(${CTLD_ADDR})
SlurmctldPort=${CTLD_PORT}
SlurmdPort=6818
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=${MUNGE_SOCK},cred_expire=10
SlurmUser=root
SlurmdUser=root
StateSaveLocation=${SSTATE}/ctld
SlurmctldPidFile=${SSTATE}/slurmctld.pid
SlurmctldLogFile=${SSTATE}/slurmctld.log
SlurmdSpoolDir=${SSTATE}/nodes/%n
SlurmdPidFile=${SSTATE}/nodes/%n/slurmd.pid
SlurmdLogFile=${SSTATE}/nodes/%n/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
TaskProlog=${PROLOG}
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SwitchType=switch/none
MpiDefault=none
ReturnToService=2
JobRequeue=0
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/filetxt
JobCompLoc=${SSTATE}/jobcomp.log
MinJobAge=3600
KillWait=10
SlurmdTimeout=30
InactiveLimit=0
${lines}PartitionName=reprise Nodes=${nodes} Default=YES MaxTime=INFINITE State=UP" && CONF_CHANGED=1 || true
}

# ---------------------------------------------------------------- daemons

ctld_pid() { pid_of "${SSTATE}/slurmctld.pid" slurmctld; }
slurmd_pid() { host_vars "$1"; pid_of "${SSTATE}/nodes/$1/slurmd.pid" "slurmd -D -N $1 " "$NSPATH"; }

start_ctld() {
  local pid i
  if pid=$(ctld_pid); then
    [ "$CONF_CHANGED" = 1 ] || return 0
    stop_tree "$pid" "slurmctld (its configuration changed)"
  fi
  rm -f "${SSTATE}/slurmctld.pid"
  say "starting slurmctld on ${CTLD_ADDR}:${CTLD_PORT} (log: ${SSTATE}/slurmctld.log)"
  SLURM_CONF="$CONF" setsid nohup slurmctld -D -f "$CONF" \
    >>"${SSTATE}/slurmctld.out" 2>&1 </dev/null 8>&- 9>&- &
  for i in $(seq 1 100); do
    if ctld_pid >/dev/null && SLURM_CONF="$CONF" timeout 5 scontrol ping 2>/dev/null | grep -q 'is UP'; then return 0; fi
    sleep 0.2
  done
  tail -n 20 "${SSTATE}/slurmctld.log" "${SSTATE}/slurmctld.out" >&2 2>/dev/null || true
  die "slurmctld does not answer after 20 s; its log is above."
}

start_slurmd() {
  local n=$1 pid
  if pid=$(slurmd_pid "$n"); then
    [ "$CONF_CHANGED" = 1 ] || return 0
    stop_tree "$pid" "${n}: slurmd (the configuration changed)"
  fi
  host_vars "$n"
  rm -f "${SSTATE}/nodes/${n}/slurmd.pid"
  say "${n}: starting slurmd on ${ADDR_N} (log: ${SSTATE}/nodes/${n}/slurmd.log)"
  SLURM_CONF="$CONF" setsid nohup nsenter --net="$NSPATH" slurmd -D -N "$n" -f "$CONF" \
    >>"${SSTATE}/nodes/${n}/slurmd.out" 2>&1 </dev/null 8>&- 9>&- &
}

# wait_idle NODE...: every node answers and is idle (or has jobs); a node left down is resumed.
wait_idle() {
  local i n state bad
  for i in $(seq 1 150); do
    bad=""
    for n in "$@"; do
      state=$(SLURM_CONF="$CONF" sinfo -h -N -n "$n" -o '%t' 2>/dev/null | head -n 1 || true)
      case "$state" in
        idle|alloc|mix|comp) ;;
        down*|drain*|drng*)
          bad+=" ${n}(${state})"
          if [ $((i % 10)) = 0 ] && slurmd_pid "$n" >/dev/null; then
            SLURM_CONF="$CONF" scontrol update nodename="$n" state=resume 2>/dev/null || true
          fi ;;
        *) bad+=" ${n}(${state:-unknown})" ;;
      esac
    done
    [ -n "$bad" ] || return 0
    for n in "$@"; do
      slurmd_pid "$n" >/dev/null || { tail -n 20 "${SSTATE}/nodes/${n}/slurmd.log" "${SSTATE}/nodes/${n}/slurmd.out" >&2 2>/dev/null || true
        die "${n}: slurmd exited while starting; its log is above."; }
    done
    sleep 0.2
  done
  die "nodes not idle after 30 s:${bad} (logs: ${SSTATE}/slurmctld.log, ${SSTATE}/nodes/*/slurmd.log)"
}

# stepds_of NODE: the pids of the slurmstepd processes in node NODE's network namespace.
stepds_of() {
  local p ns
  host_vars "$1"
  [ -e "$NSPATH" ] || return 0
  ns=$(ns_id "$NSPATH") || return 0
  for p in $(pgrep -x slurmstepd || true); do
    [ "$(readlink "/proc/${p}/ns/net" 2>/dev/null)" != "$ns" ] || echo "$p"
  done
}

stop_cluster() {
  local pid d n
  for d in "${SSTATE}"/nodes/*/; do
    [ -d "$d" ] || continue
    n=${d%/}; n=${n##*/}
    if pid=$(pid_of "${d}slurmd.pid" "slurmd -D -N ${n} "); then stop_tree "$pid" "${n}: slurmd"; fi
    # A job's steps outlive their slurmd (it starts them detached): what is left of them goes too,
    # and the containers of the node's Podman (each kept by a conmon of its own).
    for pid in $(stepds_of "$n"); do (HARD=1; stop_tree "$pid" "${n}: a job's step daemon"); done
    if command -v podman >/dev/null && [ -f "$(podman_conf "$n")/storage.conf" ]; then
      podman_on "$n" rm --all --force --time 0 >/dev/null 2>&1 || say "${n}: warning: podman rm --all failed"
    fi
  done
  if pid=$(ctld_pid); then stop_tree "$pid" slurmctld; fi
  if pid=$(munged_pid); then stop_tree "$pid" munged; fi
}

# ---------------------------------------------------------------- commands

slurm_nodes() { if [ $# -gt 0 ]; then printf '%s\n' "$@"; else printf '%s\n' "${DEFAULT_NODES[@]}"; fi; }

slurm_up() {
  local nodes n
  mapfile -t nodes < <(slurm_nodes "$@")
  for n in "${nodes[@]}"; do
    check_name "$n"
    [[ ! "$n" =~ ^h[1-9] ]] || die "node '${n}': h1..h99 are the remote-host tests' hosts; pick other names (e.g. s1 s2)"
  done
  need_root up
  slurm_install
  bash "${HERE}/testhosts.sh" up "${nodes[@]}" >/dev/null
  slurm_lock
  start_munge
  write_conf "${nodes[@]}"
  start_ctld
  for n in "${nodes[@]}"; do start_slurmd "$n"; done
  wait_idle "${nodes[@]}"
  say "cluster up: $(SLURM_CONF="$CONF" sinfo -h -o '%P %D %t %N' | tr '\n' ' ')"
  echo "SLURM_CONF=${CONF}"
}

slurm_down() {
  local purge=() nodes=() n
  for n in "$@"; do
    if [ "$n" = --purge ]; then purge=(--purge); else check_name "$n"; nodes+=("$n"); fi
  done
  [ ${#nodes[@]} -gt 0 ] || mapfile -t nodes < <(slurm_nodes)
  need_root down
  slurm_lock
  stop_cluster
  bash "${HERE}/testhosts.sh" down "${purge[@]}" "${nodes[@]}"
  if [ ${#purge[@]} -gt 0 ]; then
    for n in "${nodes[@]}"; do rm -rf --one-file-system "${SSTATE}/nodes/${n}"; done
    rm -rf --one-file-system "${SSTATE}/ctld" "${SSTATE}/jobcomp.log"
  fi
  say "cluster down"
}

slurmd_stop() {
  local n names=() pid
  for n in "$@"; do
    if [ "$n" = --kill ]; then HARD=1; else check_name "$n"; names+=("$n"); fi
  done
  [ ${#names[@]} -gt 0 ] || slurm_usage
  need_root slurmd-stop
  slurm_lock
  for n in "${names[@]}"; do
    if pid=$(slurmd_pid "$n"); then stop_tree "$pid" "${n}: slurmd"; else say "${n}: no slurmd runs"; fi
  done
}

slurm_status() {
  local pid d n
  pid=$(munged_pid) || pid=stopped; printf 'munged=%s' "$pid"
  pid=$(ctld_pid) || pid=stopped; printf ' slurmctld=%s' "$pid"
  for d in "${SSTATE}"/nodes/*/; do
    [ -d "$d" ] || continue
    n=${d%/}; n=${n##*/}
    pid=$(slurmd_pid "$n") || pid=stopped; printf ' slurmd[%s]=%s' "$n" "$pid"
  done
  printf '\n'
  if ctld_pid >/dev/null; then SLURM_CONF="$CONF" sinfo -N -o '%N %P %t %c %m' || true; fi
}

slurm_main() {
  [ $# -gt 0 ] || slurm_usage
  local cmd=$1; shift
  [[ "$SSTATE" == /* ]] || die "REPRISE_SLURM_STATE must be an absolute path (got '${SSTATE}')"
  case "$cmd" in
    up) slurm_up "$@" ;;
    down) slurm_down "$@" ;;
    slurmd-stop) slurmd_stop "$@" ;;
    status) need_root status; slurm_status ;;
    -h|--help|help) slurm_usage ;;
    *) say "unknown command '$cmd'"; slurm_usage ;;
  esac
}

slurm_main "$@"
