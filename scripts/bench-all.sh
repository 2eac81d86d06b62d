#!/usr/bin/env bash
# Runs every benchmark of README.md's "Performance" section once, in sequence, each with --json,
# and saves each output in OUT_DIR/<benchmark>.json (its standard error beside it), with the
# machine, date and commit in OUT_DIR/machine.txt. Stops at the first benchmark that fails: each
# one fails (non-zero exit) when its subject or baseline answers an error, loses or duplicates
# anything.
#
#   scripts/bench-all.sh OUT_DIR            # the figures for README.md (on a quiet machine; minutes)
#   scripts/bench-all.sh OUT_DIR --quick    # small sizes: checks that every benchmark runs
set -euo pipefail

usage() {
    echo "usage: $0 OUT_DIR [--quick]" >&2
    exit 2
}
[[ $# -ge 1 && $# -le 2 ]] || usage
out=$1
quick=false
if [[ $# -eq 2 ]]; then
    [[ $2 == --quick ]] || usage
    quick=true
fi

root=$(cd "$(dirname "$0")/.." && pwd)
mkdir -p "$out"
out=$(cd "$out" && pwd)
cd "$root"

echo "building pyat (release)…" >&2
swift build -c release --product pyat --scratch-path .build-release >&2
pyat=$root/.build-release/release/pyat

# 10,000 idle WebSocket connections need as many descriptors in this process and in the server.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

{
    echo "date: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
    echo "commit: $(git rev-parse HEAD)$(git diff --quiet HEAD -- Sources scripts || echo ' (with local changes)')"
    echo "kernel: $(uname -srm)"
    echo "cpu: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//') × $(nproc)"
    echo "memory: $(awk '/MemTotal/ {printf "%.1f GiB", $2 / 1048576}' /proc/meminfo)"
    echo "load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
    echo "quick: $quick"
} > "$out/machine.txt"

run() {
    local name=$1
    shift
    echo "== $name: $*" >&2
    local started=$SECONDS
    local status=0
    "$@" > "$out/$name.json" 2> "$out/$name.stderr" || status=$?
    if [[ $status -ne 0 ]]; then
        echo "FAILED: $name (exit $status); its output:" >&2
        cat "$out/$name.json" "$out/$name.stderr" >&2
        exit 1
    fi
    echo "   done in $((SECONDS - started)) s: $out/$name.json" >&2
}

if $quick; then
    run server python3 scripts/bench_server.py --json --binary "$pyat" --duration 2 --records 500 --large 2000
    run sdk "$pyat" bench sdk --json --requests 50 --rounds 2
    run cache "$pyat" bench cache --json --reads 200 --records 2000 --disk-records 1000
    run realtime "$pyat" bench realtime --json --writes 50 --subscribers 20 --fanout-writes 10 --idle 100
    run replay "$pyat" bench replay --json --mutations 300
    run files "$pyat" bench files --json --size-mib 16
    run v0 "$pyat" bench v0 --json --requests 50 --rounds 2
    run cluster "$pyat" bench cluster --json --seconds 5 --writers 8 --latency-writes 20 --subscribers 30 \
        --fanout-writes 3 --resumes 2 --listen-kills 2
else
    run server python3 scripts/bench_server.py --json --binary "$pyat"
    run sdk "$pyat" bench sdk --json
    run cache "$pyat" bench cache --json
    run realtime "$pyat" bench realtime --json --subscribers 1000 --idle 10000
    run replay "$pyat" bench replay --json
    run files "$pyat" bench files --json --size-mib 1024
    run v0 "$pyat" bench v0 --json
    run cluster "$pyat" bench cluster --json
fi
echo "load average at end: $(cut -d' ' -f1-3 /proc/loadavg)" >> "$out/machine.txt"
echo "all benchmarks passed; figures in $out" >&2
