#!/usr/bin/env bash
# The `storage=swarm://acme` run on a REAL 3-node Docker Swarm on this machine (issue 19), with a real Pebble
# that validates for real (no PEBBLE_VA_ALWAYS_VALID):
#
#   scripts/image.sh                              # swarmgate:latest, whoami:latest (GATE_IMAGE/WHOAMI_IMAGE)
#   scripts/multinode-acme.sh run                 # up 3 nodes, deploy, measure, print the figures
#   scripts/multinode-acme.sh down                # remove everything (the node image is kept)
#   scripts/multinode-acme.sh setup; … measure    # the two halves of `run`: measure again on a kept setup
#                                                 # (new names each time: FIRST [1] is the first number)
#
# What `run` does, all through `docker exec` into the node containers (no test traffic from the host):
#  1. builds a small FROM-scratch tools image (static busybox, openssl, GNU date, pebble, pebble-challtestsrv
#     and the libraries they link) holding a Pebble API certificate for the manager's address;
#  2. `../shared/tools/multinode-swarm.sh up 3` with 3 managers (SGDIND_MANAGERS, so the configs live in a
#     3-member Raft) and copies the three images in (`load`);
#  3. on the nodes: Pebble and its DNS server (host network of node1), the socket guard
#     (`swarmgate socket-guard --allow-config-writes`, global on the managers, dnsrr, internal overlay),
#     swarmgate global on all nodes (host-mode ports 80/443, `storage=swarm://acme`, the sealing key as the
#     Docker secret `swarmgate-acme-key`, the Docker API only through the guard), a whoami backend;
#  4. for each of NAMES names: points the name's DNS at node ((i-1) mod 3)+1, adds its router to the
#     backend's labels (every replica wants it at once), waits until every node serves a certificate that
#     verifies against Pebble's root for it, records issuance (the certificate config's CreatedAt) → served
#     by the last node, which node ordered (logs) and which node Pebble validated against (its DNS);
#  5. the take-over: a new name; the replica that takes its lease is killed (SIGKILL) mid-order; times kill →
#     served everywhere and lease expiry → served;
#  6. prints orders per name, p50/p99, the take-over times and what the guard refused (must be nothing).
#
# Knobs: NAMES [9], LEASE_TTL [10] (seconds, SWARMGATE_ACME_LEASE_TTL of the replicas), PREFIX [mnacme]
# (names of the objects made on the host engine: the image PREFIX-tools; the nested swarm is private),
# GATE_IMAGE [swarmgate:latest], WHOAMI_IMAGE [whoami:latest], SWARM_TOOL [../shared/tools/multinode-swarm.sh
# or ../../shared/tools/… from a worktree], KEEP=1 (leave the swarm up after `run`).
# Needs: busybox-static, pebble (Debian packages), openssl, a Docker engine that runs multinode-swarm.sh.
set -euo pipefail
cd "$(dirname "$0")/.."

NAMES=${NAMES:-9}
FIRST=${FIRST:-1}
LEASE_TTL=${LEASE_TTL:-10}
PREFIX=${PREFIX:-mnacme}
GATE_IMAGE=${GATE_IMAGE:-swarmgate:latest}
WHOAMI_IMAGE=${WHOAMI_IMAGE:-whoami:latest}
if [ -z "${SWARM_TOOL:-}" ]; then   # ../shared/tools next to the main checkout, ../../shared from a worktree
  for SWARM_TOOL in ../shared/tools/multinode-swarm.sh ../../shared/tools/multinode-swarm.sh; do
    [ -x "$SWARM_TOOL" ] && break
  done
fi
SWARM_TOOL=$(realpath -m "$SWARM_TOOL")
TOOLS_IMAGE=$PREFIX-tools:latest
DOMAIN=mn.test
MGR=sgdind-node1
NODES=(sgdind-node1 sgdind-node2 sgdind-node3)
PEBBLE_DNS_PORT=8053
PEBBLE_MGMT=8055
PATH=$PATH:/usr/sbin:/sbin

log() { printf '[%s] %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }
on() { local n=$1; shift; docker exec "$n" "$@"; }           # a command in a node
mgr() { on "$MGR" docker "$@"; }                            # the nested swarm's manager CLI
client() { on "$MGR" docker exec "$PREFIX-client" "$@"; }   # a command in the client container (node1)
node_ip() { docker inspect -f '{{(index .NetworkSettings.Networks "sgdind-net").IPAddress}}' "$1"; }
now_ms() { date +%s%3N; }

copy_with_libs() { # copy_with_libs ROOT FILE: the file and what ldd lists, at the same paths
  local root=$1 src=$2 lib p
  mkdir -p "$root$(dirname "$src")"
  cp -L "$src" "$root$src"
  { ldd "$src" 2>/dev/null || true; } | awk '/=>/ {print $3} /^[[:space:]]*\/[^ ]+ \(/ {print $1}' |
    while read -r lib; do
      [ -n "$lib" ] && [ -e "$lib" ] || continue
      for p in "$lib" "$(readlink -f "$lib")"; do
        [ -e "$root$p" ] && continue
        mkdir -p "$root$(dirname "$p")"
        cp -L "$p" "$root$p"
      done
    done
}

build_tools() { # the tools image, with a Pebble API certificate for $1 (the manager's address)
  local ip=$1 tmp root b
  tmp=$(mktemp -d "${TMPDIR:-/tmp}/$PREFIX-tools.XXXXXX")
  root=$tmp/rootfs
  mkdir -p "$root"/{bin,tmp,etc,pebble}
  chmod 1777 "$root/tmp"
  [ -x /bin/busybox ] && file -L /bin/busybox | grep -q 'statically linked' || die "needs a static /bin/busybox (apt-get install busybox-static)"
  cp /bin/busybox "$root/bin/busybox"
  for b in sh ash cat sleep wget grep sed awk tr head tail cut sort wc printf echo seq test nc; do
    ln -s busybox "$root/bin/$b"
  done
  for b in /usr/bin/openssl /usr/bin/date /usr/bin/pebble /usr/bin/pebble-challtestsrv; do
    [ -x "$b" ] || die "missing $b (apt-get install openssl coreutils pebble)"
    copy_with_libs "$root" "$b"
  done
  # Pebble's API certificate: a CA and a leaf for the manager's address (webpki refuses a self-signed leaf).
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 -subj "/CN=$PREFIX Pebble API CA" \
    -keyout "$tmp/ca.key" -out "$root/pebble/ca.pem" 2>/dev/null
  openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/CN=$ip" \
    -keyout "$root/pebble/api.key" -out "$tmp/api.csr" 2>/dev/null
  printf 'subjectAltName=IP:%s\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n' "$ip" >"$tmp/ext"
  openssl x509 -req -in "$tmp/api.csr" -CA "$root/pebble/ca.pem" -CAkey "$tmp/ca.key" -CAcreateserial \
    -days 2 -extfile "$tmp/ext" -out "$root/pebble/api.pem" 2>/dev/null
  chmod 0644 "$root/pebble/api.key"
  cat >"$root/pebble/pebble.json" <<EOF
{"pebble": {"listenAddress": "0.0.0.0:14000", "managementListenAddress": "0.0.0.0:15000",
  "certificate": "/pebble/api.pem", "privateKey": "/pebble/api.key", "httpPort": 80, "tlsPort": 443,
  "ocspResponderURL": "", "externalAccountBindingRequired": false}}
EOF
  # probe NAME IP...: per IP, the first time (ms) a TLS handshake for NAME verifies against /tmp/root.pem,
  # and the served leaf's SHA-256; polls until every IP verified or 120 s passed.
  cat >"$root/bin/probe" <<'EOF'
#!/bin/sh
name=$1; shift
left="$*"; end=$(( $(date +%s) + 120 ))
while [ -n "$left" ] && [ "$(date +%s)" -lt "$end" ]; do
  next=""
  for ip in $left; do
    if pem=$(openssl s_client -connect "$ip:443" -servername "$name" -CAfile /tmp/root.pem \
        -verify_hostname "$name" -verify_return_error </dev/null 2>/dev/null | openssl x509 2>/dev/null) &&
        [ -n "$pem" ]; then
      fp=$(echo "$pem" | openssl x509 -noout -fingerprint -sha256 | cut -d= -f2)
      echo "$ip $(/usr/bin/date +%s%3N) $fp"
    else
      next="$next $ip"
    fi
  done
  left=$next
  [ -n "$left" ] && sleep 0.05
done
for ip in $left; do echo "$ip never -"; done
EOF
  chmod 0755 "$root/bin/probe"
  printf 'FROM scratch\nCOPY rootfs/ /\nENV PATH=/bin:/usr/bin\n' >"$tmp/Dockerfile"
  docker build -q -t "$TOOLS_IMAGE" "$tmp" >/dev/null
  rm -rf "$tmp"
}

task_ctr() { # the swarmgate task container on node $1 (running)
  on "$1" docker ps -q --filter "label=com.docker.swarm.service.name=$PREFIX-gate" | head -1
}

wait_gate_running() { # every node runs a swarmgate task that answers on 80
  local i n ok
  for i in $(seq 1 120); do
    ok=0
    for n in "${NODES[@]}"; do
      [ -n "$(task_ctr "$n")" ] || continue
      # Connected (any HTTP answer, a 404 included) rather than refused.
      case "$(client sh -c "timeout 5 wget -qO- http://$(node_ip "$n")/ 2>&1" || true)" in
        *HTTP/*) ok=$((ok + 1)) ;;
      esac
    done
    [ "$ok" -eq "${#NODES[@]}" ] && return 0
    sleep 1
  done
  mgr service ps "$PREFIX-gate" --no-trunc >&2
  die "swarmgate not running on every node"
}

dns_a() { # dns_a NAME IP: the name resolves to IP for Pebble
  client wget -qO- --post-data "{\"host\":\"$1\",\"addresses\":[\"$2\"]}" "http://127.0.0.1:$PEBBLE_MGMT/add-a" >/dev/null
}

add_router() { # add_router ID NAME: a router for NAME on the backend (every replica sees it through the guard)
  mgr service update --detach --quiet \
    --label-add "traefik.http.routers.$1.rule=Host(\`$2\`)" \
    --label-add "traefik.http.routers.$1.entrypoints=websecure" \
    --label-add "traefik.http.routers.$1.tls.certresolver=le" \
    --label-add "traefik.http.routers.$1.service=app" "$PREFIX-whoami" >/dev/null
}

cert_created_ms() { # the CreatedAt (ms) of the certificate config of NAME; empty while there is none
  local id
  id=$(mgr config ls -q --filter "label=swarmgate.acme.kind=cert" --filter "label=swarmgate.acme.domains=$1" | head -1)
  [ -n "$id" ] || return 0
  date -d "$(mgr config inspect -f '{{json .CreatedAt}}' "$id" | tr -d '"')" +%s%3N
}

orderers() { # nodes whose current swarmgate task logged an order for NAME
  local n c
  for n in "${NODES[@]}"; do
    c=$(task_ctr "$n")
    [ -n "$c" ] || continue
    on "$n" docker logs "$c" 2>&1 | grep 'ACME: obtaining a certificate' | grep -qF "\"$1\"" && echo "$n"
  done
  return 0
}

pct() { # pct P: the P-th percentile (nearest rank) of the numbers on stdin
  sort -n | awk -v p="$1" '{ a[NR] = $1 } END { if (NR == 0) { print "-"; exit } r = int((p / 100) * NR + 0.999999); if (r < 1) r = 1; if (r > NR) r = NR; print a[r] }'
}

cmd_setup() {
  docker image inspect "$GATE_IMAGE" >/dev/null 2>&1 || die "no image $GATE_IMAGE: run scripts/image.sh"
  docker image inspect "$WHOAMI_IMAGE" >/dev/null 2>&1 || die "no image $WHOAMI_IMAGE: run scripts/image.sh"
  [ -x "$SWARM_TOOL" ] || die "no $SWARM_TOOL (SWARM_TOOL=…)"
  log "== 3-node swarm (3 managers)"
  SGDIND_MANAGERS=3 "$SWARM_TOOL" up 3 >&2
  local ip1 ip2 ip3 ips
  ip1=$(node_ip sgdind-node1); ip2=$(node_ip sgdind-node2); ip3=$(node_ip sgdind-node3)
  ips="$ip1 $ip2 $ip3"
  log "== tools image ($TOOLS_IMAGE), images into the nodes"
  build_tools "$ip1"
  "$SWARM_TOOL" load "$GATE_IMAGE" "$WHOAMI_IMAGE" "$TOOLS_IMAGE" >&2

  log "== Pebble (real validation) and its DNS on node1's host network"
  on "$MGR" docker run -d --name "$PREFIX-dns" --network host "$TOOLS_IMAGE" /usr/bin/pebble-challtestsrv \
    -defaultIPv4 "$ip1" -defaultIPv6 "" -dns01 ":$PEBBLE_DNS_PORT" -http01 "" -https01 "" -tlsalpn01 "" \
    -management ":$PEBBLE_MGMT" >/dev/null
  on "$MGR" docker run -d --name "$PREFIX-pebble" --network host -e PEBBLE_VA_NOSLEEP=1 -e PEBBLE_AUTHZREUSE=0 \
    "$TOOLS_IMAGE" /usr/bin/pebble -config /pebble/pebble.json -dnsserver "127.0.0.1:$PEBBLE_DNS_PORT" >/dev/null
  on "$MGR" docker run -d --name "$PREFIX-client" --network host "$TOOLS_IMAGE" sleep 100000 >/dev/null
  local i
  for i in $(seq 1 30); do
    client sh -c "nc -z 127.0.0.1 14000 && nc -z 127.0.0.1 15000" 2>/dev/null && break
    sleep 1
  done
  # The root that signs issued certificates, from Pebble's management API.
  client sh -c "echo -e 'GET /roots/0 HTTP/1.0\r\n\r\n' | openssl s_client -quiet -connect 127.0.0.1:15000 2>/dev/null | sed -n '/BEGIN/,/END/p' > /tmp/root.pem; grep -c BEGIN /tmp/root.pem" >/dev/null ||
    die "no issuing root from Pebble: $(on "$MGR" docker logs "$PREFIX-pebble" 2>&1 | tail -5)"

  log "== swarm objects: networks, sealing key (secret), Pebble's API CA (config), guard, swarmgate, whoami"
  mgr network create -d overlay --attachable "$PREFIX-net" >/dev/null
  mgr network create -d overlay --internal "$PREFIX-socket" >/dev/null
  openssl rand -base64 32 | docker exec -i "$MGR" docker secret create "$PREFIX-acme-key" - >/dev/null
  client cat /pebble/ca.pem | docker exec -i "$MGR" docker config create "$PREFIX-pebble-ca" - >/dev/null
  mgr service create --detach --quiet --name "$PREFIX-guard" --mode global --no-resolve-image \
    --constraint node.role==manager --network "$PREFIX-socket" --endpoint-mode dnsrr \
    --mount type=bind,source=/var/run/docker.sock,target=/var/run/docker.sock \
    "$GATE_IMAGE" socket-guard --listen=tcp://0.0.0.0:2375 --docker=/var/run/docker.sock --allow-config-writes >/dev/null
  mgr service create --detach --quiet --name "$PREFIX-whoami" --replicas 1 --no-resolve-image \
    --network "$PREFIX-net" --endpoint-mode dnsrr \
    --label traefik.enable=true --label traefik.http.services.app.loadbalancer.server.port=80 \
    "$WHOAMI_IMAGE" >/dev/null
  mgr service create --detach --quiet --name "$PREFIX-gate" --mode global --no-resolve-image \
    --hostname '{{.Node.Hostname}}' --network "$PREFIX-net" --network "$PREFIX-socket" \
    --publish mode=host,target=80,published=80 --publish mode=host,target=443,published=443 \
    --secret "source=$PREFIX-acme-key,target=swarmgate-acme-key,mode=0400" \
    --config "source=$PREFIX-pebble-ca,target=/pebble-ca.pem" \
    --env "DOCKER_HOST=tcp://$PREFIX-guard:2375" --env "SWARMGATE_ACME_LEASE_TTL=$LEASE_TTL" \
    --restart-condition any --restart-delay 1s --stop-grace-period 2s \
    "$GATE_IMAGE" \
    "--providers.swarm.endpoint=tcp://$PREFIX-guard:2375" --providers.swarm.exposedByDefault=false \
    "--providers.swarm.network=$PREFIX-net" --entrypoints.web.address=:80 --entrypoints.websecure.address=:443 \
    --certificatesresolvers.le.acme.email=ops@example.com --certificatesresolvers.le.acme.storage=swarm://acme \
    "--certificatesresolvers.le.acme.caserver=https://$ip1:14000/dir" \
    --certificatesresolvers.le.acme.cacertificates=/pebble-ca.pem \
    --certificatesresolvers.le.acme.httpchallenge.entrypoint=web >/dev/null
  wait_gate_running
  log "swarmgate runs on every node: $(mgr service ps "$PREFIX-gate" --format '{{.Node}}' --filter desired-state=running | sort | tr '\n' ' ')"
}

cmd_measure() {
  local ip3 ips i out
  ip3=$(node_ip sgdind-node3)
  ips="$(node_ip sgdind-node1) $(node_ip sgdind-node2) $ip3"
  rm -f "/tmp/$PREFIX-served.txt"
  # The lease the replicas run with (the service's environment; the default when it does not set one).
  LEASE_TTL=$(mgr service inspect -f '{{json .Spec.TaskTemplate.ContainerSpec.Env}}' "$PREFIX-gate" |
    grep -o 'SWARMGATE_ACME_LEASE_TTL=[0-9.]*' | cut -d= -f2 || true)
  LEASE_TTL=${LEASE_TTL:-300}
  log "== $NAMES names, one at a time"
  local rows=() name dns n created served fp line last allfp ord
  for i in $(seq "$FIRST" $((FIRST + NAMES - 1))); do
    name="n$i.$DOMAIN"
    n=$(( (i - 1) % 3 + 1 ))
    dns=$(node_ip "sgdind-node$n")
    dns_a "$name" "$dns"
    add_router "n$i" "$name"
    local t0; t0=$(now_ms)
    out=$(client probe "$name" $ips)
    last=0; allfp=""
    while read -r ip at fp; do
      [ "$at" = never ] && die "$name never served by $ip: $(mgr service logs --tail 20 "$PREFIX-gate" 2>&1)"
      [ "$at" -gt "$last" ] && last=$at
      allfp="$allfp $fp"
    done <<<"$out"
    created=""
    for _ in $(seq 1 20); do created=$(cert_created_ms "$name"); [ -n "$created" ] && break; sleep 0.5; done
    [ -n "$created" ] || die "$name: no certificate config"
    ord=$(orderers "$name" | tr '\n' ' ')
    served=$((last - created))
    rows+=("$name dns=sgdind-node$n orderer=[${ord% }] router_added->served_everywhere=$((last - t0))ms issuance->served_everywhere=${served}ms fingerprints_equal=$([ "$(echo $allfp | tr ' ' '\n' | sort -u | wc -l)" -eq 1 ] && echo yes || echo NO)")
    log "${rows[-1]}"
    echo "$served" >>"/tmp/$PREFIX-served.txt"
  done

  log "== take-over: the replica that takes the lease is killed mid-order (lease ${LEASE_TTL}s)"
  name="k$FIRST.$DOMAIN"
  dns_a "$name" "$ip3"
  add_router "k$FIRST" "$name"
  local holder="" lease_id="" expires="" killed victim
  for _ in $(seq 1 200); do
    lease_id=$(mgr config ls -q --filter label=swarmgate.acme.kind=lease --filter "label=swarmgate.acme.domains=$name" | head -1)
    [ -n "$lease_id" ] && break
    sleep 0.05
  done
  [ -n "$lease_id" ] || die "no lease for $name"
  # Mid-order: once the holder has published its HTTP-01 answer (it waits 1 s before telling the CA).
  local answer=no
  for _ in $(seq 1 100); do
    mgr config ls -q --filter label=swarmgate.acme.kind=http-01 | grep -q . && { answer=yes; break; }
    sleep 0.05
  done
  holder=$(mgr config inspect -f '{{index .Spec.Labels "swarmgate.acme.holder"}}' "$lease_id")
  victim=${holder%%/*}
  local ctr; ctr=$(task_ctr "$victim")
  killed=$(now_ms)   # when the kill is sent (the docker exec round trip comes after)
  on "$victim" docker kill "$ctr" >/dev/null
  expires=$(mgr config inspect -f '{{index .Spec.Labels "swarmgate.acme.expires"}}' "$lease_id" 2>/dev/null || echo "")
  [ -n "$(cert_created_ms "$name")" ] && log "WARNING: the certificate existed before the kill (not mid-order)"
  log "lease $lease_id held by $holder: killed $victim's task (lease expires at $expires)"
  out=$(client probe "$name" $ips)
  last=0
  while read -r ip at fp; do
    [ "$at" = never ] && die "$name never served by $ip after the take-over"
    [ "$at" -gt "$last" ] && last=$at
  done <<<"$out"
  local taken certs
  taken=$(mgr service logs --raw --since "$((killed / 1000 - 1))" "$PREFIX-gate" 2>&1 | grep 'stale ACME lease taken over' | grep -c . || true)
  certs=$(mgr config ls -q --filter label=swarmgate.acme.kind=cert --filter "label=swarmgate.acme.domains=$name" | grep -c . || true)
  local takeover_row="$name killed $victim mid-order (its answer published: $answer) kill->served_everywhere=$((last - killed))ms lease_expiry->served_everywhere=$((last - ${expires:-$killed}))ms take-overs_logged=$taken certificates=$certs (lease ${LEASE_TTL}s)"
  log "$takeover_row"

  log "== orders per name (all replicas' logs, every task incl. the killed one)"
  local all_logs; all_logs=$(mgr service logs --raw "$PREFIX-gate" 2>&1)
  local orders_row="" bad=0 c
  for i in $(seq "$FIRST" $((FIRST + NAMES - 1))) k; do
    if [ "$i" = k ]; then name="k$FIRST.$DOMAIN"; else name="n$i.$DOMAIN"; fi
    c=$(grep 'ACME: obtaining a certificate' <<<"$all_logs" | grep -cF "\"$name\"" || true)
    orders_row="$orders_row $name=$c"
    [ "$i" != k ] && [ "$c" -ne 1 ] && bad=1
  done
  local refused; refused=$(mgr service logs --raw "$PREFIX-guard" 2>&1 | grep -c 'not allowed' || true)
  local p50 p99 nonorder
  p50=$(pct 50 <"/tmp/$PREFIX-served.txt"); p99=$(pct 99 <"/tmp/$PREFIX-served.txt")
  nonorder=$(printf '%s\n' "${rows[@]}" | awk '{ d = $2; sub("dns=", "", d); o = $3; sub("orderer=\\[", "", o); sub("\\]", "", o); if (d != o) n++ } END { print n + 0 }')
  rm -f "/tmp/$PREFIX-served.txt"
  echo
  echo "RESULT multinode-acme: 3 nodes (3 managers), swarmgate global, storage=swarm://acme, Pebble real validation"
  printf 'RESULT %s\n' "${rows[@]}"
  echo "RESULT orders per name:$orders_row (k: the killed holder's order + the take-over's)"
  echo "RESULT names validated through a node that did not order: $nonorder of $NAMES"
  echo "RESULT issuance -> served by all 3 nodes over $NAMES names: p50 ${p50} ms, p99 ${p99} ms (probe resolution ~50-150 ms)"
  echo "RESULT take-over: $takeover_row"
  echo "RESULT socket guard (--allow-config-writes) refused $refused calls"
  [ "$bad" -eq 0 ] || die "a name was ordered more than once (or never)"
  [ "$nonorder" -ge 1 ] || die "no name was validated through a node that did not order (run more NAMES)"
}

cmd_run() {
  cmd_setup
  local rc=0
  cmd_measure || rc=$?
  if [ "${KEEP:-0}" != 1 ]; then cmd_down; fi
  return "$rc"
}

cmd_down() {
  if docker ps -q --filter name=sgdind-node1 | grep -q .; then
    "$SWARM_TOOL" down --keep-image >&2 || true
  fi
  docker image rm "$TOOLS_IMAGE" >/dev/null 2>&1 || true
  rm -f "/tmp/$PREFIX-served.txt"
}

case "${1:-}" in
  run) cmd_run ;;
  setup) cmd_setup ;;
  measure) cmd_measure ;;
  down) cmd_down ;;
  *) sed -n '2,30p' "$0"; exit 2 ;;
esac
