#!/usr/bin/env bash
# Extra "machines" on this one host, for integration tests of remote Docker hosts over SSH (and
# later Slurm nodes). Each host NAME is a Linux network namespace with its own dockerd and sshd.
#
#   docker/testhosts.sh up NAME [NAME...]          make (or check) hosts; idempotent
#   docker/testhosts.sh down [--purge] NAME [...]  stop and remove them (--purge: state dir too)
#   docker/testhosts.sh engine-stop [--kill] NAME [...]
#                                                  stop only that host's dockerd (SIGTERM: it stops
#                                                  its containers first; --kill: SIGKILL, a crash)
#   docker/testhosts.sh engine-start NAME [...]    start only that host's dockerd
#   docker/testhosts.sh status                     one line per known host
#
# Names match [a-z0-9]{1,8} ("ssh" is reserved). Host number N, stable for a name:
#   hK with K in 1..99 (no leading zero)  -> N = K            (h1 -> 1, h2 -> 2, ...)
#   any other name                        -> the first N in 100..254 not held by another host's
#                                            state dir, recorded in STATE/NAME/number and kept
#                                            until `down --purge NAME`.
# Host N has:
#   netns reprise-NAME; veth rp-NAME (host, 10.77.N.1/24) <-> rpn-NAME (in the ns, 10.77.N.2/24),
#   lo up, default route via 10.77.N.1; net.ipv4.ip_forward=1 on the host (namespaces reach
#   each other through it). Where iptables exists, the namespace's own OUTPUT chain rejects
#   anything but loopback and 10.77.0.0/16, so nothing started in it can reach other addresses
#   (the host's firewall is not touched).
#   dockerd (started with nsenter --net, not `ip netns exec`, which breaks dockerd):
#     --data-root STATE/NAME/data --exec-root /run/rh-NAME --pidfile STATE/NAME/dockerd.pid
#     -H unix://STATE/NAME/docker.sock --bridge=none --iptables=false --ip6tables=false
#     --insecure-registry 10.77.N.1:5000   (log: STATE/NAME/dockerd.log)
#   sshd on 10.77.N.2:22, config STATE/NAME/sshd_config: own host key, key-only root login with
#     the client key below, SetEnv DOCKER_HOST=unix://STATE/NAME/docker.sock.
#   socat on the host: 10.77.N.1:5000 -> 127.0.0.1:5000 (the registry of docker/engine.sh).
# Client side, STATE/ssh/: id_ed25519 (one key for all hosts), known_hosts (pinned host keys),
#   config (one "Host reprise-NAME" entry per host that is up), included from root's
#   ~/.ssh/config by one "Include STATE/ssh/config" line at its top. So after `up`:
#     ssh reprise-NAME docker version
#     DOCKER_HOST=ssh://reprise-NAME docker version
#     ssh reprise-NAME docker pull 10.77.N.1:5000/reprise/base:bookworm-python3
# STATE is ${REPRISE_HOSTS_STATE:-/var/lib/reprise-hosts}. Stopping uses the pid files only
# (and the processes those pids started, found by parent pid), never a process name.
# The last lines on stdout of `up` are, one per host:  NAME ssh://reprise-NAME 10.77.N.2 10.77.N.1:5000
# Progress goes to stderr. Must run as root. A second `up` with everything running changes nothing.
# Sourced (as docker/slurm.sh does), it only defines its functions and variables.
set -euo pipefail

BASE="${REPRISE_HOSTS_STATE:-/var/lib/reprise-hosts}"
SSH_DIR="${BASE}/ssh"
CLIENT_KEY="${SSH_DIR}/id_ed25519"
KNOWN_HOSTS="${SSH_DIR}/known_hosts"
SSH_CONFIG="${SSH_DIR}/config"
SSH_BLOCKS="${SSH_DIR}/hosts.d"
REGISTRY_TARGET="${REPRISE_LOCAL_REGISTRY:-127.0.0.1:5000}"
REGISTRY_PORT=5000
EGRESS_GUARD="${REPRISE_HOSTS_EGRESS_GUARD:-1}"
STOP_WAIT_S=20
HARD=0   # engine-stop --kill: SIGKILL at once (a crash), not SIGTERM first (a clean stop)

say() { printf 'testhosts: %s\n' "$*" >&2; }
die() { printf 'testhosts: error: %s\n' "$*" >&2; exit 1; }

usage() {
  cat >&2 <<'EOF'
usage: docker/testhosts.sh up NAME [NAME...]
       docker/testhosts.sh down [--purge] NAME [NAME...]
       docker/testhosts.sh engine-stop [--kill] NAME [NAME...]
       docker/testhosts.sh engine-start NAME [NAME...]
       docker/testhosts.sh status
NAME: [a-z0-9]{1,8}, e.g. h1 h2. See the comment at the top of this script.
EOF
  exit 2
}

# ---------------------------------------------------------------- prerequisites

need_root() {
  [ "$(id -u)" = 0 ] || die "this script must run as root: it creates network namespaces, veth links and daemons.
Run it with sudo (sudo docker/testhosts.sh $*), or as root in the test container."
}

install_missing() {
  local missing=()
  command -v ip >/dev/null || missing+=(iproute2)
  command -v sshd >/dev/null || [ -x /usr/sbin/sshd ] || missing+=(openssh-server)
  command -v ssh >/dev/null && command -v ssh-keygen >/dev/null || missing+=(openssh-client)
  command -v socat >/dev/null || missing+=(socat)
  command -v curl >/dev/null || missing+=(curl)
  command -v ps >/dev/null || missing+=(procps)
  if [ ${#missing[@]} -gt 0 ]; then
    command -v apt-get >/dev/null || die "missing: ${missing[*]}, and no apt-get on this host to install them. Install them with your package manager."
    say "installing ${missing[*]} (apt-get)"
    # Keep the packages' maintainer scripts from starting a system-wide sshd on 0.0.0.0:22.
    local policy=/usr/sbin/policy-rc.d made_policy=0
    if [ ! -e "$policy" ]; then
      printf '#!/bin/sh\nexit 101\n' > "$policy"; chmod 755 "$policy"; made_policy=1
    fi
    export DEBIAN_FRONTEND=noninteractive
    local rc=0
    { apt-get update -q >&2 && apt-get install -y -q --no-install-recommends "${missing[@]}" >&2; } || rc=$?
    [ "$made_policy" = 0 ] || rm -f "$policy"
    [ "$rc" = 0 ] || die "apt-get install ${missing[*]} failed (exit $rc); its output is above."
  fi
  SSHD=$(command -v sshd || echo /usr/sbin/sshd)
  local t
  for t in nsenter flock findmnt setsid nohup; do
    command -v "$t" >/dev/null || die "$t is missing (Debian: apt-get install util-linux)."
  done
  command -v dockerd >/dev/null && command -v docker >/dev/null \
    || die "dockerd/docker are missing: run 'bash docker/engine.sh' first (it installs docker.io)."
}

# ---------------------------------------------------------------- names and numbers

check_name() {
  [[ "$1" =~ ^[a-z0-9]{1,8}$ ]] || die "bad host name '$1': use 1 to 8 of [a-z0-9], e.g. h1"
  [ "$1" != ssh ] || die "'ssh' is reserved (${SSH_DIR} holds the client key); pick another name"
}

# host_number NAME [allocate]: print N for NAME (see the top of this file); nothing if unknown.
host_number() {
  local name=$1 alloc=${2:-} f n used
  if [[ "$name" =~ ^h([1-9][0-9]?)$ ]]; then echo "${BASH_REMATCH[1]}"; return 0; fi
  f="${BASE}/${name}/number"
  if [ -s "$f" ]; then read -r n < "$f" || true; echo "$n"; return 0; fi
  [ -n "$alloc" ] || return 0
  used=" $(cat "${BASE}"/*/number 2>/dev/null | tr '\n' ' ' || true) "
  for n in $(seq 100 254); do
    if [[ "$used" != *" $n "* ]]; then
      mkdir -p -m 700 "${BASE}/${name}"
      echo "$n" > "$f"
      echo "$n"; return 0
    fi
  done
  die "no free host number in 100..254 for '$name' (down --purge some hosts)"
}

# host_vars NAME [allocate]: set the per-host globals.
host_vars() {
  NAME=$1
  N=$(host_number "$1" "${2:-}")
  HS="${BASE}/${NAME}"
  NS="reprise-${NAME}"
  NSPATH="/var/run/netns/${NS}"
  VETH_H="rp-${NAME}"
  VETH_N="rpn-${NAME}"
  EXEC_ROOT="/run/rh-${NAME}"
  SOCK="${HS}/docker.sock"
  if [ -n "$N" ]; then
    [[ "$N" =~ ^[0-9]+$ ]] && [ "$N" -ge 1 ] && [ "$N" -le 254 ] || die "bad host number '$N' in ${HS}/number"
    ADDR_H="10.77.${N}.1"; ADDR_N="10.77.${N}.2"
  else
    ADDR_H=""; ADDR_N=""
  fi
}

# ---------------------------------------------------------------- processes (by pid file only)

# proc_state PID: the state letter of a process ("" if none).
proc_state() { sed -E 's/^.*\) ([A-Za-z]).*$/\1/' "/proc/$1/stat" 2>/dev/null || true; }
alive() { local s; s=$(proc_state "$1"); [ -n "$s" ] && [ "$s" != Z ] && [ "$s" != X ]; }
start_time() { sed -E 's/^.*\) //' "/proc/$1/stat" 2>/dev/null | cut -d' ' -f20; }
ns_id() { echo "net:[$(stat -L -c %i "$1" 2>/dev/null)]"; }

# pid_of FILE MARKER [NSPATH]: print the pid in FILE when that process lives, has MARKER in its
# command line and (with NSPATH) is in that network namespace.
pid_of() {
  local file=$1 marker=$2 nspath=${3:-} pid="" cmd
  [ -s "$file" ] || return 1
  read -r pid < "$file" || true
  [[ "$pid" =~ ^[0-9]+$ ]] || return 1
  alive "$pid" || return 1
  cmd=$(tr '\0' ' ' < "/proc/${pid}/cmdline" 2>/dev/null) || return 1
  [[ "$cmd" == *"$marker"* ]] || return 1
  if [ -n "$nspath" ]; then
    [ "$(readlink "/proc/${pid}/ns/net" 2>/dev/null)" = "$(ns_id "$nspath")" ] || return 1
  fi
  echo "$pid"
}

# descendants PID: "pid:starttime" of every process below PID (by parent pid).
descendants() {
  local p
  for p in $(ps -e -o pid=,ppid= | awk -v root="$1" '
      { par[$1] = $2 }
      END { want[root] = 1; changed = 1
            while (changed) { changed = 0
              for (k in par) if (!(k in want) && (par[k] in want)) { want[k] = 1; changed = 1; print k } } }'); do
    echo "${p}:$(start_time "$p")"
  done
}

# wait_gone SECONDS PID...: wait until none of the PIDs lives; fail if some still do.
wait_gone() {
  local secs=$1 i p left; shift
  for i in $(seq 1 $((secs * 5))); do
    left=0
    for p in "$@"; do alive "$p" && left=1; done
    [ "$left" = 1 ] || return 0
    sleep 0.2
  done
  left=0
  for p in "$@"; do alive "$p" && left=1; done
  [ "$left" = 0 ]
}

# stop_tree PID WHAT: SIGTERM to PID, wait up to 20 s, then SIGKILL; then the same for whatever
# it had started that outlived it (e.g. sshd's sessions), matched by pid and start time.
stop_tree() {
  local pid=$1 what=$2 kids k p st left=()
  kids=$(descendants "$pid")
  if [ "$HARD" = 1 ]; then
    say "killing ${what} (pid ${pid}, SIGKILL)"
    kill -KILL "$pid" 2>/dev/null || true
  else
    say "stopping ${what} (pid ${pid})"
    kill -TERM "$pid" 2>/dev/null || true
  fi
  if ! wait_gone "$STOP_WAIT_S" "$pid"; then
    say "${what} (pid ${pid}) still runs after ${STOP_WAIT_S} s: SIGKILL"
    kill -KILL "$pid" 2>/dev/null || true
    wait_gone 5 "$pid" || say "warning: ${what} (pid ${pid}) survived SIGKILL"
  fi
  for k in $kids; do
    p=${k%%:*}; st=${k#*:}
    if alive "$p" && [ "$(start_time "$p")" = "$st" ]; then left+=("$p"); fi
  done
  [ ${#left[@]} -gt 0 ] || return 0
  say "stopping what ${what} left running (pids ${left[*]})"
  if [ "$HARD" = 1 ]; then kill -KILL "${left[@]}" 2>/dev/null || true; else kill -TERM "${left[@]}" 2>/dev/null || true; fi
  if ! wait_gone "$STOP_WAIT_S" "${left[@]}"; then
    kill -KILL "${left[@]}" 2>/dev/null || true
    wait_gone 5 "${left[@]}" || say "warning: some of pids ${left[*]} survived SIGKILL"
  fi
}

# ---------------------------------------------------------------- files

# write_if_changed FILE MODE CONTENT: write CONTENT (plus a newline) unless FILE already holds it.
# Returns 0 when it wrote, 1 when nothing changed.
write_if_changed() {
  local f=$1 mode=$2 content=$3 tmp
  if [ -f "$f" ] && [ "$(< "$f")" = "$content" ]; then return 1; fi
  tmp=$(mktemp "${f}.XXXXXX")
  printf '%s\n' "$content" > "$tmp"
  chmod "$mode" "$tmp"
  mv -f "$tmp" "$f"
  return 0
}

ensure_client_key() {
  [ -d "$SSH_DIR" ] || install -d -m 700 "$SSH_DIR"
  [ -d "$SSH_BLOCKS" ] || install -d -m 700 "$SSH_BLOCKS"
  if [ ! -s "$CLIENT_KEY" ] || [ ! -s "${CLIENT_KEY}.pub" ]; then
    say "generating the client key ${CLIENT_KEY}"
    rm -f "$CLIENT_KEY" "${CLIENT_KEY}.pub"
    ssh-keygen -q -t ed25519 -N '' -C "reprise-testhosts" -f "$CLIENT_KEY" >&2
  fi
  [ -e "$KNOWN_HOSTS" ] || install -m 600 /dev/null "$KNOWN_HOSTS"
}

# The one Include line at the top of root's ~/.ssh/config (other lines are kept as they are).
ensure_include() {
  local home dir f line first="" tmp
  home=$(getent passwd root | cut -d: -f6); home=${home:-/root}
  dir="${home}/.ssh"; f="${dir}/config"; line="Include ${SSH_CONFIG}"
  [ -d "$dir" ] || install -d -m 700 "$dir"
  if [ ! -e "$f" ]; then
    (umask 077; printf '%s\n' "$line" > "$f"); chmod 600 "$f"
    say "created ${f} (Include ${SSH_CONFIG})"
    return 0
  fi
  if [ -s "$f" ]; then read -r first < "$f" || true; fi
  [ "$first" != "$line" ] || return 0
  tmp=$(mktemp "${dir}/.config.XXXXXX")
  { printf '%s\n' "$line"; grep -vxF -- "$line" "$f" || true; } > "$tmp"
  cat "$tmp" > "$f"; rm -f "$tmp"
  say "added 'Include ${SSH_CONFIG}' at the top of ${f}"
}

regen_ssh_config() {
  local content f
  content="# Written by reprise docker/testhosts.sh: one entry per test host that is up. Do not edit."
  for f in "$SSH_BLOCKS"/*.conf; do
    [ -e "$f" ] || continue
    content+=$'\n'"$(< "$f")"
  done
  write_if_changed "$SSH_CONFIG" 600 "$content" || true
}

ssh_entry_add() {
  local block
  block="Host ${NS}
  HostName ${ADDR_N}
  User root
  IdentityFile ${CLIENT_KEY}
  UserKnownHostsFile ${KNOWN_HOSTS}
  StrictHostKeyChecking accept-new
  HashKnownHosts no
  IdentitiesOnly yes
  BatchMode yes
  ConnectTimeout 5"
  if write_if_changed "${SSH_BLOCKS}/${NAME}.conf" 600 "$block"; then regen_ssh_config; fi
  # Pin the host key: the file ssh reads then always matches, even after a --purge re-keyed it.
  local key want n
  read -r key < "${HS}/ssh_host_ed25519_key.pub"
  key=$(awk '{print $1" "$2}' <<<"$key")
  want="${NS},${ADDR_N} ${key}"
  n=$(ssh-keygen -F "$ADDR_N" -f "$KNOWN_HOSTS" 2>/dev/null | grep -vc '^#' || true)
  if grep -qxF -- "$want" "$KNOWN_HOSTS" && [ "$n" = 1 ]; then return 0; fi
  known_hosts_remove
  printf '%s\n' "$want" >> "$KNOWN_HOSTS"
}

known_hosts_remove() {
  [ -s "$KNOWN_HOSTS" ] || return 0
  local h
  for h in "$ADDR_N" "$NS"; do
    [ -n "$h" ] || continue
    if ssh-keygen -F "$h" -f "$KNOWN_HOSTS" >/dev/null 2>&1; then
      ssh-keygen -q -R "$h" -f "$KNOWN_HOSTS" >/dev/null 2>&1 || true
    fi
  done
  rm -f "${KNOWN_HOSTS}.old"
}

ssh_entry_remove() {
  if [ -e "${SSH_BLOCKS}/${NAME}.conf" ]; then
    rm -f "${SSH_BLOCKS}/${NAME}.conf"
    regen_ssh_config
  fi
  known_hosts_remove
}

host_files() {
  [ -d "$HS" ] || install -d -m 700 "$HS"
  [ -d "${HS}/data" ] || install -d -m 710 "${HS}/data"
  if [ ! -s "${HS}/ssh_host_ed25519_key" ] || [ ! -s "${HS}/ssh_host_ed25519_key.pub" ]; then
    say "${NAME}: generating its ssh host key"
    rm -f "${HS}/ssh_host_ed25519_key" "${HS}/ssh_host_ed25519_key.pub"
    ssh-keygen -q -t ed25519 -N '' -C "${NS}" -f "${HS}/ssh_host_ed25519_key" >&2
  fi
  write_if_changed "${HS}/authorized_keys" 600 "$(< "${CLIENT_KEY}.pub")" || true
  [ -s "${HS}/daemon.json" ] || echo '{}' > "${HS}/daemon.json"
  SSHD_CONFIG_CHANGED=0
  write_if_changed "${HS}/sshd_config" 600 "# Written by reprise docker/testhosts.sh for test host ${NAME}. Do not edit.
ListenAddress ${ADDR_N}
Port 22
HostKey ${HS}/ssh_host_ed25519_key
PidFile ${HS}/sshd.pid
PermitRootLogin prohibit-password
PasswordAuthentication no
KbdInteractiveAuthentication no
PubkeyAuthentication yes
AuthorizedKeysFile ${HS}/authorized_keys
# The state dir may sit below a world-writable dir (REPRISE_HOSTS_STATE=/tmp/...), which
# StrictModes would refuse; the files themselves are root's, mode 600.
StrictModes no
UsePAM no
X11Forwarding no
PrintMotd no
MaxStartups 200:30:400
MaxSessions 100
SetEnv DOCKER_HOST=unix://${SOCK}
Subsystem sftp internal-sftp" && SSHD_CONFIG_CHANGED=1 || true
}

# ---------------------------------------------------------------- network

ns_valid() { ip -n "$NS" link show lo >/dev/null 2>&1; }

net_up() {
  local o
  # No other interface may hold an address in this host's /24.
  o=$(ip -4 -o addr show to "10.77.${N}.0/24" | awk -v d="$VETH_H" '$2 != d {print $2" "$4}')
  [ -z "$o" ] || die "10.77.${N}.0/24 is already used on this host (${o}); host '${NAME}' needs it. Pick another name."
  if ! ns_valid; then
    if [ -e "$NSPATH" ]; then ip netns del "$NS" 2>/dev/null || rm -f "$NSPATH"; fi
    say "${NAME}: creating netns ${NS}"
    ip netns add "$NS"
  fi
  if ! ip link show "$VETH_H" >/dev/null 2>&1 || ! ip -n "$NS" link show "$VETH_N" >/dev/null 2>&1; then
    ip link del "$VETH_H" 2>/dev/null || true
    ip -n "$NS" link del "$VETH_N" 2>/dev/null || true
    say "${NAME}: creating veth ${VETH_H} (${ADDR_H}) <-> ${VETH_N} (${ADDR_N})"
    ip link add "$VETH_H" type veth peer name "$VETH_N" netns "$NS"
  fi
  ip -4 -o addr show dev "$VETH_H" | grep -qF " ${ADDR_H}/24 " || ip addr replace "${ADDR_H}/24" dev "$VETH_H"
  ip -n "$NS" -4 -o addr show dev "$VETH_N" | grep -qF " ${ADDR_N}/24 " || ip -n "$NS" addr replace "${ADDR_N}/24" dev "$VETH_N"
  ip -o link show "$VETH_H" | grep -qE '[<,]UP[,>]' || ip link set "$VETH_H" up
  ip -n "$NS" -o link show "$VETH_N" | grep -qE '[<,]UP[,>]' || ip -n "$NS" link set "$VETH_N" up
  ip -n "$NS" -o link show lo | grep -qE '[<,]UP[,>]' || ip -n "$NS" link set lo up
  ip -n "$NS" -4 route show default | grep -qF "default via ${ADDR_H} dev ${VETH_N}" \
    || ip -n "$NS" route replace default via "$ADDR_H" dev "$VETH_N"
  [ "$(< /proc/sys/net/ipv4/ip_forward)" = 1 ] || { say "sysctl net.ipv4.ip_forward=1"; sysctl -qw net.ipv4.ip_forward=1; }
  egress_guard
}

# Inside the namespace only: OUTPUT accepts loopback and 10.77.0.0/16, rejects the rest.
egress_guard() {
  [ "$EGRESS_GUARD" = 1 ] || return 0
  command -v iptables >/dev/null || return 0
  local want have
  want=$'-P OUTPUT ACCEPT\n-A OUTPUT -o lo -j ACCEPT\n-A OUTPUT -d 10.77.0.0/16 -j ACCEPT\n-A OUTPUT -j REJECT --reject-with icmp-port-unreachable'
  have=$(nsenter --net="$NSPATH" iptables -w 5 -S OUTPUT 2>/dev/null || true)
  [ "$have" != "$want" ] || return 0
  if nsenter --net="$NSPATH" iptables -w 5 -F OUTPUT 2>/dev/null \
     && nsenter --net="$NSPATH" iptables -w 5 -A OUTPUT -o lo -j ACCEPT \
     && nsenter --net="$NSPATH" iptables -w 5 -A OUTPUT -d 10.77.0.0/16 -j ACCEPT \
     && nsenter --net="$NSPATH" iptables -w 5 -A OUTPUT -j REJECT --reject-with icmp-port-unreachable; then
    say "${NAME}: egress from ${NS} limited to loopback and 10.77.0.0/16"
  else
    say "warning: ${NAME}: could not set the egress guard in ${NS} (iptables failed); continuing without it"
  fi
}

net_down() {
  if ip link show "$VETH_H" >/dev/null 2>&1; then say "${NAME}: deleting veth ${VETH_H}"; ip link del "$VETH_H"; fi
  if ip netns list 2>/dev/null | awk '{print $1}' | grep -qxF "$NS"; then
    say "${NAME}: deleting netns ${NS}"; ip netns del "$NS"
  fi
  [ ! -e "$NSPATH" ] || rm -f "$NSPATH" 2>/dev/null || true
}

# ---------------------------------------------------------------- dockerd

engine_answers() { curl -fsS -m 2 --unix-socket "$SOCK" http://localhost/_ping >/dev/null 2>&1; }

start_engine() {
  local pid
  if pid=$(pid_of "${HS}/dockerd.pid" "${HS}/dockerd.pid"); then
    if [ "$(readlink "/proc/${pid}/ns/net")" != "$(ns_id "$NSPATH")" ]; then
      say "${NAME}: dockerd (pid ${pid}) runs in an old namespace; restarting it"
      stop_engine
    else
      wait_engine; return 0
    fi
  fi
  [ ${#SOCK} -lt 100 ] || die "socket path ${SOCK} is too long for a unix socket; use a shorter REPRISE_HOSTS_STATE"
  stop_engine_leftovers
  # Not a live dockerd of ours (checked above), so a stale file; dockerd refuses to start while the
  # pid in it still has a /proc entry (e.g. a SIGKILLed dockerd not yet reaped).
  rm -f "${HS}/dockerd.pid"
  say "${NAME}: starting dockerd (log: ${HS}/dockerd.log)"
  setsid nohup nsenter --net="$NSPATH" dockerd \
    --config-file "${HS}/daemon.json" \
    --data-root "${HS}/data" --exec-root "$EXEC_ROOT" --pidfile "${HS}/dockerd.pid" \
    -H "unix://${SOCK}" \
    --bridge=none --iptables=false --ip6tables=false \
    --insecure-registry "${ADDR_H}:${REGISTRY_PORT}" \
    >>"${HS}/dockerd.log" 2>&1 </dev/null 9>&- &
  wait_engine "$!"
}

wait_engine() { # wait_engine [PID]: wait until the engine answers (and fail early if PID exits)
  local i
  for i in $(seq 1 120); do
    if engine_answers; then return 0; fi
    if [ -n "${1:-}" ] && ! alive "$1"; then
      tail -n 20 "${HS}/dockerd.log" >&2 || true
      die "${NAME}: dockerd exited while starting; its log is above (${HS}/dockerd.log)."
    fi
    sleep 0.5
  done
  tail -n 20 "${HS}/dockerd.log" >&2 || true
  die "${NAME}: dockerd did not answer on ${SOCK} within 60 s; its log is above (${HS}/dockerd.log)."
}

# What a dockerd that died hard can leave: its containerd, and the containers with their shims.
# containerd 1.6 writes no shim.pid: a shim is found as the parent of the container's init.pid,
# and only when its command line names this engine's containerd and that container.
stop_engine_leftovers() {
  local pid f dir id ipid spid scmd
  if pid=$(pid_of "${EXEC_ROOT}/containerd/containerd.pid" "${EXEC_ROOT}/containerd/"); then
    stop_tree "$pid" "${NAME}: containerd"
  fi
  # With the engine gone nobody waits for these to exit cleanly: SIGKILL, as `docker kill` would.
  local HARD=1
  for f in "${EXEC_ROOT}"/containerd/daemon/io.containerd.runtime.v2.task/*/*/init.pid; do
    [ -s "$f" ] || continue
    dir=${f%/init.pid}; id=${dir##*/}
    read -r ipid < "$f" || true
    [[ "$ipid" =~ ^[0-9]+$ ]] && alive "$ipid" || continue
    spid=$(sed -E 's/^.*\) //' "/proc/${ipid}/stat" 2>/dev/null | cut -d' ' -f2)
    scmd=$(tr '\0' ' ' < "/proc/${spid}/cmdline" 2>/dev/null || true)
    if [[ "$scmd" == *"-id ${id} "* && "$scmd" == *"${EXEC_ROOT}/containerd/containerd.sock"* ]]; then
      stop_tree "$spid" "${NAME}: container ${id:0:12} (its shim)"
    elif grep -qF "$id" "/proc/${ipid}/cgroup" 2>/dev/null; then
      stop_tree "$ipid" "${NAME}: container ${id:0:12}"
    fi
  done
  # dockerd reuses the containerd in this file while its pid has a /proc entry (even a zombie
  # not yet reaped), then times out on its socket: drop it once no live containerd of ours has it.
  pid_of "${EXEC_ROOT}/containerd/containerd.pid" "${EXEC_ROOT}/containerd/" >/dev/null \
    || rm -f "${EXEC_ROOT}/containerd/containerd.pid"
}

stop_engine() {
  local pid
  if pid=$(pid_of "${HS}/dockerd.pid" "${HS}/dockerd.pid"); then stop_tree "$pid" "${NAME}: dockerd"; fi
  stop_engine_leftovers
}

unmount_host() {
  local t
  findmnt -rn -o TARGET | awk -v a="${HS}/data" -v b="$EXEC_ROOT" \
      '$0 == a || index($0, a "/") == 1 || $0 == b || index($0, b "/") == 1 { print length($0) " " $0 }' \
    | sort -rn | cut -d' ' -f2- | while IFS= read -r t; do
      t=$(printf '%b' "$t")   # findmnt -r escapes blanks as \x20
      say "${NAME}: unmounting ${t}"
      umount "$t" 2>/dev/null || umount -l "$t" || say "warning: could not unmount ${t}"
    done
}

# ---------------------------------------------------------------- sshd and socat

sshd_pid() { pid_of "${HS}/sshd.pid" "${HS}/sshd_config" "$NSPATH"; }

start_sshd() {
  local pid i
  if pid=$(pid_of "${HS}/sshd.pid" "${HS}/sshd_config"); then
    if [ "$SSHD_CONFIG_CHANGED" = 1 ] || ! sshd_pid >/dev/null; then
      say "${NAME}: sshd config or namespace changed; restarting sshd"
      stop_tree "$pid" "${NAME}: sshd"
    else
      return 0
    fi
  fi
  [ -d /run/sshd ] || install -d -m 755 /run/sshd   # sshd's privilege separation directory
  "$SSHD" -t -f "${HS}/sshd_config" || die "${NAME}: sshd -t -f ${HS}/sshd_config rejects the config (see above)."
  say "${NAME}: starting sshd on ${ADDR_N}:22 (log: ${HS}/sshd.log)"
  nsenter --net="$NSPATH" "$SSHD" -f "${HS}/sshd_config" -E "${HS}/sshd.log" \
    </dev/null >/dev/null 2>>"${HS}/sshd.log" 9>&- \
    || { tail -n 20 "${HS}/sshd.log" >&2; die "${NAME}: sshd did not start; its log is above."; }
  for i in $(seq 1 50); do
    if sshd_pid >/dev/null && timeout 1 bash -c "exec 3<>/dev/tcp/${ADDR_N}/22" 2>/dev/null; then return 0; fi
    sleep 0.2
  done
  tail -n 20 "${HS}/sshd.log" >&2 || true
  die "${NAME}: sshd does not accept connections on ${ADDR_N}:22 after 10 s; its log is above."
}

socat_marker() { echo "bind=${ADDR_H},"; }

start_socat() {
  local i
  if pid_of "${HS}/socat.pid" "$(socat_marker)" >/dev/null; then return 0; fi
  [[ "$REGISTRY_TARGET" =~ ^127\.[0-9]+\.[0-9]+\.[0-9]+:[0-9]+$ ]] \
    || die "REPRISE_LOCAL_REGISTRY=${REGISTRY_TARGET}: the forward only goes to a loopback registry (127.x.x.x:PORT)."
  say "${NAME}: forwarding ${ADDR_H}:${REGISTRY_PORT} -> ${REGISTRY_TARGET} (socat; log: ${HS}/socat.log)"
  setsid nohup bash -c 'echo $$ > "$1"; shift; exec "$@"' _ "${HS}/socat.pid" \
    socat "TCP-LISTEN:${REGISTRY_PORT},bind=${ADDR_H},reuseaddr,fork" "TCP:${REGISTRY_TARGET}" \
    >>"${HS}/socat.log" 2>&1 </dev/null 9>&- &
  for i in $(seq 1 50); do
    if pid_of "${HS}/socat.pid" "$(socat_marker)" >/dev/null \
       && ss -Hltn src "${ADDR_H}:${REGISTRY_PORT}" 2>/dev/null | grep -q .; then
      if ! nsenter --net="$NSPATH" curl -fsS -m 3 "http://${ADDR_H}:${REGISTRY_PORT}/v2/" >/dev/null 2>&1; then
        say "warning: ${NAME}: no registry answers through ${ADDR_H}:${REGISTRY_PORT} (is it up on ${REGISTRY_TARGET}? run 'bash docker/engine.sh')"
      fi
      return 0
    fi
    sleep 0.2
  done
  tail -n 20 "${HS}/socat.log" >&2 || true
  die "${NAME}: socat does not listen on ${ADDR_H}:${REGISTRY_PORT} after 10 s; its log is above."
}

stop_pidfile() { # stop_pidfile FILE MARKER WHAT
  local pid
  if pid=$(pid_of "$1" "$2"); then stop_tree "$pid" "$3"; fi
  rm -f "$1"
}

# ---------------------------------------------------------------- commands

lock() {
  [ -d "$BASE" ] || install -d -m 700 "$BASE"
  exec 9>>"${BASE}/.lock"   # >> keeps its mtime: a warm `up` changes nothing
  flock -w 600 9 || die "another testhosts.sh holds ${BASE}/.lock for over 10 minutes"
}

cmd_up() {
  [ $# -gt 0 ] || usage
  local n lines=() seen=" "
  for n in "$@"; do check_name "$n"; done
  install_missing
  lock
  ensure_client_key
  ensure_include
  for n in "$@"; do
    [[ "$seen" != *" $n "* ]] || continue
    seen+="$n "
    host_vars "$n" allocate
    host_files
    net_up
    start_engine
    start_sshd
    start_socat
    ssh_entry_add
    lines+=("${NAME} ssh://${NS} ${ADDR_N} ${ADDR_H}:${REGISTRY_PORT}")
  done
  printf '%s\n' "${lines[@]}"
}

cmd_down() {
  local purge=0 names=() n
  for n in "$@"; do
    if [ "$n" = --purge ]; then purge=1; else check_name "$n"; names+=("$n"); fi
  done
  [ ${#names[@]} -gt 0 ] || usage
  lock
  for n in "${names[@]}"; do
    host_vars "$n"
    stop_pidfile "${HS}/sshd.pid" "${HS}/sshd_config" "${NAME}: sshd"
    [ -z "$ADDR_H" ] || stop_pidfile "${HS}/socat.pid" "$(socat_marker)" "${NAME}: socat"
    stop_engine
    unmount_host
    if [ -e "$EXEC_ROOT" ]; then
      if findmnt -rn -o TARGET | grep -q "^${EXEC_ROOT}\(/\|$\)"; then
        say "warning: ${EXEC_ROOT} still has mounts; leaving it"
      else
        rm -rf --one-file-system "$EXEC_ROOT"
      fi
    fi
    net_down
    ssh_entry_remove
    rm -f "${HS}/docker.sock"
    if [ "$purge" = 1 ] && [ -d "$HS" ]; then
      if findmnt -rn -o TARGET | grep -q "^${HS}\(/\|$\)"; then
        say "warning: ${HS} still has mounts; not purging it"
      else
        say "${NAME}: purging ${HS}"
        rm -rf --one-file-system "$HS"
      fi
    fi
    say "${NAME}: down"
  done
}

cmd_engine() { # cmd_engine start|stop [--kill] NAME...
  local what=$1 n names=(); shift
  for n in "$@"; do
    if [ "$n" = --kill ] && [ "$what" = stop ]; then HARD=1; else check_name "$n"; names+=("$n"); fi
  done
  [ ${#names[@]} -gt 0 ] || usage
  lock
  for n in "${names[@]}"; do
    host_vars "$n"
    if [ "$what" = stop ]; then
      stop_engine
      say "${NAME}: dockerd stopped"
    else
      [ -n "$N" ] && [ -s "${HS}/sshd_config" ] && ns_valid \
        || die "host '${n}' is not up; run: docker/testhosts.sh up ${n}"
      start_engine
      say "${NAME}: dockerd answers on ${SOCK}"
    fi
  done
}

cmd_status() {
  local names n d p netns
  names=$( { for d in "$BASE"/*/; do d=${d%/}; [ -s "${d}/number" ] || [ -e "${d}/sshd_config" ] && echo "${d##*/}"; done
             ip netns list 2>/dev/null | awk '$1 ~ /^reprise-/ {sub(/^reprise-/, "", $1); print $1}'; } \
           | grep -E '^[a-z0-9]{1,8}$' | grep -vx ssh | sort -u || true)
  if [ -z "$names" ]; then say "no test hosts known under ${BASE}"; return 0; fi
  for n in $names; do
    host_vars "$n"
    if ns_valid; then netns=up; else netns=down; fi
    printf '%s n=%s addr=%s netns=%s' "$NAME" "${N:-?}" "${ADDR_N:-?}" "$netns"
    p=$(pid_of "${HS}/dockerd.pid" "${HS}/dockerd.pid") && { engine_answers && p+=",answers" || p+=",not-answering"; } || p=stopped
    printf ' dockerd=%s' "$p"
    p=$(pid_of "${HS}/sshd.pid" "${HS}/sshd_config") || p=stopped
    printf ' sshd=%s' "$p"
    if [ -n "$ADDR_H" ]; then p=$(pid_of "${HS}/socat.pid" "$(socat_marker)") || p=stopped; else p=stopped; fi
    printf ' socat=%s' "$p"
    if [ -e "${SSH_BLOCKS}/${NAME}.conf" ]; then printf ' ssh=%s\n' "$NS"; else printf ' ssh=none\n'; fi
  done
}

main() {
  [ $# -gt 0 ] || usage
  local cmd=$1; shift
  case "$cmd" in
    up|down|engine-stop|engine-start|status) ;;
    -h|--help|help) usage ;;
    *) say "unknown command '$cmd'"; usage ;;
  esac
  need_root "$cmd" "$@"
  [[ "$BASE" == /* ]] || die "REPRISE_HOSTS_STATE must be an absolute path (got '${BASE}')"
  case "$cmd" in
    up) cmd_up "$@" ;;
    down) cmd_down "$@" ;;
    engine-stop) cmd_engine stop "$@" ;;
    engine-start) cmd_engine start "$@" ;;
    status) cmd_status ;;
  esac
}

if [[ "${BASH_SOURCE[0]}" == "$0" ]]; then main "$@"; fi
