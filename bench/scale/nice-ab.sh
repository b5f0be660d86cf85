#!/bin/bash
# nice-ab.sh: one manager holding 20 clusters × 16 shards × (1+2) + 3
# Sentinels (1,020 instances), its autogroup switched between two nice
# values on the same running system. Each phase prints the load average
# every 10 s, the observe rounds finished in 60 s and their mean duration
# (redis_manager_observe_duration_seconds from /metrics), and the manager's
# CPU. Linux with autogroups, root (nice below 0); run it alone.
#
#	bench/scale/nice-ab.sh [bin/redis-manager] [-5] [-20]
#
# It stops the manager and every instance under its data dir on exit.
set -eu
BIN=$(realpath "${1:-bin/redis-manager}"); A=${2:--5}; B=${3:--20}
D=$(mktemp -d /tmp/nice-ab-XXXXXX); PORT=7899
ulimit -n 20000
command -v redis-server >/dev/null || { echo "redis-server is not on PATH (make deps)"; exit 1; }
setsid "$BIN" serve --listen 127.0.0.1:$PORT --data-dir "$D" --port-range 28000-31999 --log-level warn --local-control-nice="$A" >"$D.log" 2>&1 &
MGR=$!
cleanup() {
	kill "$MGR" 2>/dev/null || true; sleep 1
	for p in $(pgrep redis-server || true); do case "$(readlink /proc/$p/cwd)" in "$D"*) kill -9 "$p";; esac; done
	rm -rf "$D" "$D.log"
}
trap cleanup EXIT
export REDIS_MANAGER_SERVER=http://127.0.0.1:$PORT REDIS_MANAGER_DATA_DIR=$D
for _ in $(seq 50); do [ -s "$D/admin.token" ] && break; sleep 0.2; done
pids=""
for i in $(seq -w 0 19); do
	"$BIN" cluster create "scale-$i" --shards 16 --replicas 2 --sentinels 3 >/dev/null & pids="$pids $!"
	if (( 10#$i % 2 == 1 )); then wait $pids; pids=""; fi
done
echo "created: $(pgrep -c redis-server) redis-servers; load $(cut -d' ' -f1-3 /proc/loadavg)"
metric() { curl -s "http://127.0.0.1:$PORT/metrics" | awk '/^redis_manager_observe_duration_seconds_(sum|count)/ {printf "%s ", $2}'; }
cpu() { awk '{print $14+$15}' "/proc/$MGR/stat"; }
sleep 30
for nice in "$A" "$B" "$A" "$B"; do
	echo "$nice" >"/proc/$MGR/autogroup"
	sleep 45
	read -r s0 n0 <<<"$(metric)"; c0=$(cpu); l=""
	for _ in 1 2 3 4 5 6; do sleep 10; l="$l $(cut -d' ' -f1 /proc/loadavg)"; done
	read -r s1 n1 <<<"$(metric)"; c1=$(cpu)
	awk -v nice="$nice" -v l="$l" -v s="$((0))" -v ds="$(echo "$s1 - $s0" | bc)" -v dn="$((n1 - n0))" -v dc="$((c1 - c0))" -v hz="$(getconf CLK_TCK)" \
		'BEGIN { printf "nice %s: load every 10 s:%s; %d rounds in 60 s, mean %.2f s; manager CPU %.1f %% of a core\n", nice, l, dn, (dn ? ds/dn : 0), dc*100/hz/60 }'
done
