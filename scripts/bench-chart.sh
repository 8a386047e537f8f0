#!/usr/bin/env bash
# Sweep warren bench over concurrency x prefetch (e2e, with --baseline), keep
# the JSON runs in internal/bench/testdata/sweep/ and draw
# docs/bench-throughput.png from them with scripts/bench-chart.py.
#
#   scripts/bench-chart.sh                 # sweep, then draw
#   scripts/bench-chart.sh --draw-only     # redraw from the kept JSON
#
# Environment: WARREN_URL (the broker, default the local one), WARREN_BIN (a
# built warren; default: go build ./cmd/warren), JOBS (per run, default
# 10000), ROUNDS (default 3), CONCURRENCY ("1 8 32 64"), PREFETCH
# ("10 100 500"), TITLE (a line about the machine for the chart).
# Needs python3 with matplotlib (Debian: apt-get install python3-matplotlib).
set -euo pipefail
cd "$(dirname "$0")/.."

out=internal/bench/testdata/sweep
png=docs/bench-throughput.png
jobs=${JOBS:-10000}
rounds=${ROUNDS:-3}
concurrency=${CONCURRENCY:-1 8 32 64}
prefetch=${PREFETCH:-10 100 500}

python=python3
if ! "$python" -c 'import matplotlib' 2>/dev/null; then
	python=/usr/bin/python3
	"$python" -c 'import matplotlib' 2>/dev/null || {
		echo "bench-chart: matplotlib is missing (apt-get install python3-matplotlib)" >&2
		exit 1
	}
fi

if [[ ${1:-} != --draw-only ]]; then
	bin=${WARREN_BIN:-}
	if [[ -z $bin ]]; then
		bin=$(mktemp -d)/warren
		go build -o "$bin" ./cmd/warren
	fi
	mkdir -p "$out"
	rm -f "$out"/*.json
	for c in $concurrency; do
		for p in $prefetch; do
			echo "bench-chart: concurrency $c, prefetch $p" >&2
			"$bin" bench --mode e2e --baseline --jobs "$jobs" --rounds "$rounds" \
				--concurrency "$c" --prefetch "$p" --output json >"$out/c$c-p$p.json"
		done
	done
fi

"$python" scripts/bench-chart.py "$out"/*.json -o "$png" --title "${TITLE:-}"
