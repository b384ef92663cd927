#!/usr/bin/env bash
# instructions.sh counts the server instructions per call (valgrind's
# callgrind) of the null server and of the built vigil binary started from
# restored state, for ext_proc (one new stream per HTTP request) and
# ext_authz: robust where wall-clock throughput is noisy (see the package
# comment). Usage, from the repository root:
#
#	test/bench/instructions.sh [calls]   # default 3000 calls per window
#	REDIS=1 test/bench/instructions.sh [calls]
#
# With REDIS=1 (issue 13) the load is the mixed one (one call in 20 from
# probing attackers, whose windows are shared) and Vigil is measured a
# second time with Redis configured (a redis-server started here, flush
# every 250 ms): the "redis" lines against the "vigil" lines are the cost
# of sharing state on the request path.
#
# KEEP=dir keeps the idle and load dumps, for callgrind_annotate.
#
# Each server runs alone under callgrind with GOMAXPROCS=1 and
# GODEBUG=asyncpreemptoff=1; after a warm-up the counters are zeroed, an
# idle windows and a load window are dumped, and the result is
# (load − idle rate × load seconds) / calls, the idle rate the lowest of
# three 3 s windows. Work the server defers (the engine's minute, the
# snapshot every minute) counts when it falls in the load window: run it
# a few times.
set -euo pipefail
calls=${1:-3000}
work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$work"' EXIT
go build -o "$work/vigil" .
go test -c -o "$work/bench.test" ./test/bench
VIGIL_BENCH_PREPARE="$work/state" "$work/bench.test" -test.run '^TestPrepareState$' >/dev/null

port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
total() { grep -h '^totals:\|^summary:' "$1" | head -1 | awk '{print $2}'; }
mixed=${REDIS:+1}
drive() { # service addr calls → seconds
	VIGIL_BENCH_MIXED=$mixed VIGIL_BENCH_TARGET=$2 VIGIL_BENCH_SERVICE=$1 VIGIL_BENCH_CALLS=$3 "$work/bench.test" -test.run '^TestDrive$' |
		awk '/^calls/ {print $4}'
}

measure() { # name service command... (ADDR: the gRPC address)
	local name=$1 svc=$2; shift 2
	local addr=127.0.0.1:$(port) out="$work/cg.$name.$svc"
	local args=("${@//ADDR/$addr}")
	VIGIL_BENCH_SERVE_NULL=$addr GODEBUG=asyncpreemptoff=1 GOMAXPROCS=1 \
		valgrind --tool=callgrind --callgrind-out-file="$out" "${args[@]}" >"$work/$name.log" 2>&1 &
	local pid=$!
	for _ in $(seq 600); do
		(exec 3<>"/dev/tcp/127.0.0.1/${addr#*:}") 2>/dev/null && break
		sleep 0.2
	done
	drive "$svc" "$addr" "$calls" >/dev/null # warm-up
	# The idle rate (tickers) is the lowest of three 3 s windows: a
	# periodic task (the minute's snapshot) in one of them is not idle.
	callgrind_control --zero "$pid" >/dev/null 2>&1
	local idle=""
	for w in 1 2 3; do
		sleep 3
		callgrind_control --dump=idle$w "$pid" >/dev/null 2>&1
		local i
		i=$(total "$out.$w")
		if [ -z "$idle" ] || [ "$i" -lt "$idle" ]; then idle=$i; fi
	done
	local secs
	secs=$(drive "$svc" "$addr" "$calls")
	callgrind_control --dump=load "$pid" >/dev/null 2>&1
	local load
	load=$(total "$out.4")
	if [ -n "${KEEP:-}" ]; then mkdir -p "$KEEP" && cp "$out.1" "$KEEP/$name.$svc.idle" && cp "$out.4" "$KEEP/$name.$svc.load"; fi
	kill -TERM "$pid"
	wait "$pid" 2>/dev/null || true
	python3 -c "print('%-6s %-9s %8.0f instructions/call (load %d in %.1fs, idle %d per 3s)' % ('$name', '$svc', ($load - $idle/3*$secs)/$calls, $load, $secs, $idle))"
}

if [ -n "${REDIS:-}" ]; then
	rport=$(port)
	redis-server --port "$rport" --bind 127.0.0.1 --save '' --appendonly no --dir "$work" >"$work/redis.log" 2>&1 &
	for _ in $(seq 100); do
		(exec 3<>"/dev/tcp/127.0.0.1/$rport") 2>/dev/null && break
		sleep 0.1
	done
fi
round=0
for svc in ext_proc ext_authz; do
	measure null "$svc" "$work/bench.test" -test.run '^TestServeNull$'
	rm -rf "$work/run" && cp -r "$work/state" "$work/run"
	measure vigil "$svc" "$work/vigil" serve --config "$work/run/vigil.yaml" --data-dir "$work/run" \
		--drain-delay 0s --admin-addr 127.0.0.1:0 --grpc-addr ADDR
	if [ -n "${REDIS:-}" ]; then
		round=$((round + 1))
		rm -rf "$work/run" && cp -r "$work/state" "$work/run"
		cat >>"$work/run/vigil.yaml" <<-EOF
			fingerprint_key_file: $work/run/fingerprint.key
			redis:
			  addrs: [127.0.0.1:$rport]
			  key_prefix: "i$round:"
			  flush_interval: 250ms
		EOF
		measure redis "$svc" "$work/vigil" serve --config "$work/run/vigil.yaml" --data-dir "$work/run" \
			--drain-delay 0s --admin-addr 127.0.0.1:0 --grpc-addr ADDR
	fi
done
