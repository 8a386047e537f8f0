#!/usr/bin/env bash
# chaos.sh - run the chaos suite (internal/chaos, docs/reliability.md) and
# print its ledger. It starts RabbitMQ nodes of its own from the installed
# rabbitmq-server; it never touches the shared node on 5672.
#
#   scripts/chaos.sh                                      bounded run (about 7 minutes)
#   CHAOS_JOBS=100002 CHAOS_DURATION=10m scripts/chaos.sh full run (about 40 minutes)
#
# Environment:
#   CHAOS_JOBS      healthy jobs over all scenarios (default 2000)
#   CHAOS_DURATION  how long each scenario enqueues and injects faults (default 45s)
#   CHAOS_TIMEOUT   go test -timeout (default 60m)
#   CHAOS_REPORT    also keep the ledger in this file (default: a temporary file)
#   CHAOS_VERBOSE=1 stream the suite's progress (go test -v)
# The partition scenario puts nodes in network namespaces: it needs root and
# iproute2 (ip, tc), which this script installs with apt-get when missing.
#
#   CHAOS_SCENARIOS, CHAOS_KEEP, CHAOS_FAULTS, CHAOS_FLAKY_EVERY,
#   CHAOS_NODE_LOG_LEVEL: see docs/reliability.md
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v ip >/dev/null 2>&1 || ! command -v tc >/dev/null 2>&1; then
	if [[ "$(id -u)" == 0 ]] && command -v apt-get >/dev/null 2>&1; then
		echo "chaos: installing iproute2 (ip, tc) for the partition scenario"
		apt-get update -qq
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq iproute2
	else
		echo "chaos: ip and tc (iproute2) are missing; the partition scenario needs them" >&2
	fi
fi

export CHAOS_JOBS="${CHAOS_JOBS:-2000}"
export CHAOS_DURATION="${CHAOS_DURATION:-45s}"
timeout="${CHAOS_TIMEOUT:-60m}"
tmp=""
if [[ -z "${CHAOS_REPORT:-}" ]]; then
	tmp="$(mktemp -t warren-chaos-ledger.XXXXXX)"
	CHAOS_REPORT="$tmp"
fi
export CHAOS_REPORT
trap '[[ -n "$tmp" ]] && rm -f "$tmp"' EXIT

flags=(-race -count=1 -tags chaos -timeout "$timeout")
if [[ "${CHAOS_VERBOSE:-0}" == 1 ]]; then
	flags+=(-v)
fi
echo "chaos: CHAOS_JOBS=$CHAOS_JOBS CHAOS_DURATION=$CHAOS_DURATION (go test ${flags[*]} ./internal/chaos)"
rc=0
go test "${flags[@]}" ./internal/chaos || rc=$?
if [[ -s "$CHAOS_REPORT" ]]; then
	cat "$CHAOS_REPORT"
fi
exit "$rc"
