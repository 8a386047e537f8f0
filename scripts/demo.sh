#!/usr/bin/env bash
# demo.sh - a guided tour of Warren against a real RabbitMQ (run via `make demo`).
#
# It declares a fresh queue, starts one worker that runs a small shell handler
# per job, enqueues jobs of four kinds and narrates what happens:
#   email   succeeds at once
#   flaky   fails on attempts 1 and 2, succeeds on attempt 3 (retries with backoff)
#   broken  exits 65: a permanent failure, straight to the dead-letter queue
#   doomed  always exits 1: retried until --max-attempts, then dead-lettered
# Then it "fixes" the handler, replays the dead-letter queue and watches the
# replayed jobs succeed, pauses the queue (a new job waits) and resumes it,
# and asks a briefly started dashboard's HTTP API about the queue.
#
# Environment:
#   WARREN_BIN     the warren binary (default bin/warren)
#   WARREN_URL     broker URL (default amqp://guest:guest@127.0.0.1:5672/)
#   DEMO_QUEUE     queue name (default demo-<unix time>)
#   DEMO_TIMEOUT   seconds to wait for each phase (default 60)
#   DEMO_KEEP=1    keep the demo queues and the temp dir (worker log, handler)
set -euo pipefail

cd "$(dirname "$0")/.."

WARREN="${WARREN_BIN:-bin/warren}"
[[ "$WARREN" == /* ]] || WARREN="$PWD/$WARREN"
export WARREN_URL="${WARREN_URL:-amqp://guest:guest@127.0.0.1:5672/}"
RUN_ID="$(date +%s)"
QUEUE="${DEMO_QUEUE:-demo-$RUN_ID}"
TIMEOUT="${DEMO_TIMEOUT:-60}"
KEEP="${DEMO_KEEP:-0}"

if [[ -t 1 ]]; then
	BOLD=$'\e[1m' DIM=$'\e[2m' GREEN=$'\e[32m' YELLOW=$'\e[33m' RED=$'\e[31m' RESET=$'\e[0m'
else
	BOLD='' DIM='' GREEN='' YELLOW='' RED='' RESET=''
fi

step() { printf '\n%s==> %s%s\n' "$BOLD" "$*" "$RESET"; }
info() { printf '    %s\n' "$*"; }
die() {
	printf '%sdemo: %s%s\n' "$RED" "$*" "$RESET" >&2
	exit 1
}
# show CMD...: print a command (without the URL, which may hold a password), then run it.
show() {
	printf '%s$ warren %s%s\n' "$DIM" "$*" "$RESET"
	"$WARREN" "$@"
}

# peek CMD...: like show, for display-only commands: a failure is reported, not fatal.
peek() {
	show "$@" || printf '%s    (warren %s failed with status %s; carrying on)%s\n' "$YELLOW" "$1" "$?" "$RESET"
}

[[ -x "$WARREN" ]] || die "$WARREN not found or not executable; run 'make build' first (or 'make demo')"

WORK="$(mktemp -d "${TMPDIR:-/tmp}/warren-demo.XXXXXX")"
LOG="$WORK/worker.log"
HANDLER="$WORK/handler.sh"
FIXED="$WORK/fixed"
WORKER_PID=""
NARRATOR_PID=""
OK=0
DECLARED=0

# ---------------------------------------------------------------- cleanup ---
stop_worker() {
	[[ -n "$WORKER_PID" ]] || return 0
	if kill -0 "$WORKER_PID" 2>/dev/null; then
		kill -TERM "$WORKER_PID" 2>/dev/null || true
		local i
		for ((i = 0; i < 30; i++)); do
			kill -0 "$WORKER_PID" 2>/dev/null || break
			sleep 1
		done
		if kill -0 "$WORKER_PID" 2>/dev/null; then
			info "worker did not stop within 30s of SIGTERM; killing it"
			kill -KILL "$WORKER_PID" 2>/dev/null || true
		fi
	fi
	local rc=0
	wait "$WORKER_PID" 2>/dev/null || rc=$?
	WORKER_PID=""
	return "$rc"
}

stop_narrator() {
	[[ -n "$NARRATOR_PID" ]] || return 0
	# The narrator's tail follows the worker's pid and ends by itself; give it
	# a moment to print the last lines, then make sure.
	local i
	for ((i = 0; i < 3; i++)); do
		kill -0 "$NARRATOR_PID" 2>/dev/null || break
		sleep 1
	done
	kill "$NARRATOR_PID" 2>/dev/null || true
	wait "$NARRATOR_PID" 2>/dev/null || true
	NARRATOR_PID=""
}

# delete_demo_queues: remove this run's queues from a local broker, if we can.
delete_demo_queues() {
	((DECLARED)) || return 0
	if [[ "$KEEP" != "1" ]] && command -v rabbitmqctl >/dev/null 2>&1 &&
		{ [[ "$(id -u)" == "0" ]] || [[ "$(id -un)" == "rabbitmq" ]]; } &&
		[[ "${WARREN_URL##*@}" =~ ^(127\.0\.0\.1|localhost)(:5672)?/?$ ]]; then
		local q
		for q in "$QUEUE" "$QUEUE.dlq"; do
			if rabbitmqctl -q -p / delete_queue "$q" >/dev/null 2>&1; then
				info "deleted the demo queue $q"
			else
				info "could not delete $q; remove it with: rabbitmqctl delete_queue $q"
			fi
		done
		info "(the shared delay-level queues and exchanges stay: other queues use them)"
	else
		info "the demo queues $QUEUE and $QUEUE.dlq are left on the broker; delete them with"
		info "    rabbitmqctl delete_queue $QUEUE && rabbitmqctl delete_queue $QUEUE.dlq"
	fi
}

cleanup() {
	local rc=$?
	trap - EXIT INT TERM
	stop_worker || true
	stop_narrator
	delete_demo_queues
	if ((OK)) && [[ "$KEEP" != "1" ]]; then
		rm -rf "$WORK"
	else
		printf '\nworker log and handler kept in %s\n' "$WORK" >&2
		if ! ((OK)) && [[ -s "$LOG" ]]; then
			printf -- '--- last lines of the worker log ---\n' >&2
			tail -n 20 "$LOG" >&2
		fi
	fi
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# ------------------------------------------------------------- log helpers ---
# slog text lines look like:
#   time=... level=INFO msg="job succeeded" task_id=X type=email queue=Q attempt=1
field() { # field LINE KEY -> value of KEY=value or KEY="value with \"escapes\""
	local re="(^| )$2=(\"(([^\"\\\\]|\\\\.)*)\"|([^ ]*))" v
	if [[ "$1" =~ $re ]]; then
		v="${BASH_REMATCH[3]}${BASH_REMATCH[5]}"
		v="${v//\\\"/\"}"
		printf '%s' "$v"
	fi
}

narrate() {
	local line msg tag colour extra e v
	while IFS= read -r line; do
		msg="$(field "$line" msg)"
		case "$msg" in
		"job succeeded") tag="succeeded    " colour="$GREEN" ;;
		"job retrying") tag="retrying     " colour="$YELLOW" ;;
		"job dead-lettered") tag="dead-lettered" colour="$RED" ;;
		*)
			case "$(field "$line" level)" in
			WARN | ERROR) printf '    %s[worker] %s%s\n' "$YELLOW" "$line" "$RESET" ;;
			esac
			continue
			;;
		esac
		extra=""
		for e in reason delay err; do
			v="$(field "$line" "$e")"
			[[ -n "$v" ]] || continue
			if [[ "$e" == err ]]; then # worker: command "sh" exited with status 1: stderr: ...
				v="${v#worker: }"
				v="${v#command \"*\" }"
			fi
			extra+="  $e: $v"
		done
		printf '    %s[worker] %s%s  type=%-6s attempt=%s  task=%s%s\n' \
			"$colour" "$tag" "$RESET" "$(field "$line" type)" "$(field "$line" attempt)" \
			"$(field "$line" task_id)" "$extra"
	done
}

re_escape() { sed 's/[][\.*^$+?(){}|/]/\\&/g' <<<"$1"; }

# logged MSG ID -> true once the worker log has line MSG for task ID
logged() {
	grep -F "msg=\"$1\"" "$LOG" 2>/dev/null |
		grep -qE "(^| )task_id=\"?$(re_escape "$2")\"?( |$)"
}

all_logged() { # all_logged MSG ID...
	local msg="$1" id
	shift
	for id in "$@"; do logged "$msg" "$id" || return 1; done
}

dlq_json() { "$WARREN" dlq list --queue "$QUEUE" --output json 2>/dev/null || true; }

in_dlq() { # in_dlq ID... -> all IDs listed in the dead-letter queue
	local json id
	json="$(dlq_json)"
	for id in "$@"; do grep -qF "\"$id\"" <<<"$json" || return 1; done
}

none_in_dlq() { # none_in_dlq ID...
	local json id
	json="$(dlq_json)"
	for id in "$@"; do
		if grep -qF "\"$id\"" <<<"$json"; then return 1; fi
	done
}

# wait_for DESCRIPTION CMD... : poll CMD every second until it succeeds.
wait_for() {
	local what="$1" deadline=$((SECONDS + TIMEOUT)) start=$SECONDS
	shift
	info "waiting (up to ${TIMEOUT}s) until $what ..."
	until "$@"; do
		if [[ -n "$WORKER_PID" ]] && ! kill -0 "$WORKER_PID" 2>/dev/null; then
			die "the worker exited unexpectedly while waiting until $what"
		fi
		((SECONDS < deadline)) || die "timed out after ${TIMEOUT}s waiting until $what"
		sleep 1
	done
	info "done after $((SECONDS - start))s: $what"
}

# ------------------------------------------------------------------- tour ---
step "Warren demo on queue '$QUEUE'"
info "broker:  ${WARREN_URL%%://*}://${WARREN_URL##*@}"
info "binary:  $WARREN"
info "scratch: $WORK"

step "Declaring the queue, its dead-letter queue '$QUEUE.dlq' and the shared delay levels"
show topology declare --queue "$QUEUE" ||
	die "could not declare the topology; is RabbitMQ up? try scripts/ensure-rabbitmq.sh"
DECLARED=1

step "Writing a handler script: payload on stdin, WARREN_* variables in the environment"
cat >"$HANDLER" <<EOF
#!/bin/sh
# Demo handler. Exit 0 = done, 65 = permanent failure, anything else = retry.
payload=\$(cat)
fixed="$FIXED"
case "\$WARREN_TASK_TYPE" in
email)
	echo "handler: sending email \$payload" >&2
	exit 0 ;;
flaky)
	if [ "\$WARREN_TASK_ATTEMPT" -lt 3 ]; then
		echo "handler: flaky task \$WARREN_TASK_ID failing on attempt \$WARREN_TASK_ATTEMPT" >&2
		exit 1
	fi
	exit 0 ;;
broken)
	[ -e "\$fixed" ] && exit 0
	echo "handler: bad input in \$WARREN_TASK_ID, giving up (65)" >&2
	exit 65 ;;
doomed)
	[ -e "\$fixed" ] && exit 0
	echo "handler: downstream is down for \$WARREN_TASK_ID" >&2
	exit 1 ;;
*)
	echo "handler: unknown type \$WARREN_TASK_TYPE" >&2
	exit 65 ;;
esac
EOF
chmod +x "$HANDLER"
info "email: succeeds | flaky: fails until attempt 3 | broken: exit 65 | doomed: always exit 1"
info "broken and doomed succeed once the file $FIXED exists"

step "Starting a worker (max 3 attempts, backoff 1s then 2s)"
printf '%s$ warren worker --queue %s --concurrency 4 --exec "sh %s" --max-attempts 3 --retry-base 1s --retry-cap 2s%s\n' \
	"$DIM" "$QUEUE" "$HANDLER" "$RESET"
: >"$LOG"
"$WARREN" worker --queue "$QUEUE" --concurrency 4 --exec "sh $HANDLER" \
	--handler-timeout 30s --max-attempts 3 --retry-base 1s --retry-cap 2s \
	>"$LOG" 2>&1 </dev/null &
WORKER_PID=$!
info "worker pid $WORKER_PID, log $LOG"
tail -n +1 -f --pid="$WORKER_PID" "$LOG" 2>/dev/null | narrate &
NARRATOR_PID=$!
sleep 1
kill -0 "$WORKER_PID" 2>/dev/null || die "the worker failed to start"

step "Enqueuing jobs (each ID is printed once the broker confirms it)"
declare -a EMAIL=() FLAKY=() BROKEN=() DOOMED=()
enqueue() { # enqueue TYPE N PAYLOAD -> appends the task ID to the TYPE's list
	local type="$1" n="$2" payload="$3" id
	id="$("$WARREN" enqueue --queue "$QUEUE" --type "$type" --payload "$payload" \
		--id "$RUN_ID-$type-$n")" || die "enqueue of a $type job failed"
	id="$(tail -n 1 <<<"$id" | tr -d '[:space:]')"
	[[ -n "$id" ]] || die "enqueue printed no task ID"
	printf '    enqueued %-6s -> %s\n' "$type" "$id"
	case "$type" in
	email) EMAIL+=("$id") ;;
	flaky) FLAKY+=("$id") ;;
	broken) BROKEN+=("$id") ;;
	doomed) DOOMED+=("$id") ;;
	esac
}
enqueue email 1 '{"to":"ada@example.com","template":"welcome"}'
enqueue email 2 '{"to":"grace@example.com","template":"receipt"}'
enqueue email 3 '{"to":"linus@example.com","template":"reset"}'
enqueue flaky 1 '{"url":"https://example.com/webhook/1"}'
enqueue flaky 2 '{"url":"https://example.com/webhook/2"}'
enqueue broken 1 '{"image":"corrupt.png"}'
enqueue broken 2 '{"image":"truncated.jpg"}'
enqueue doomed 1 '{"report":"q3"}'

step "Watching the worker (live): emails succeed, flaky jobs retry then succeed"
wait_for "every email and flaky job succeeded" all_logged "job succeeded" "${EMAIL[@]}" "${FLAKY[@]}"

step "Meanwhile broken jobs failed for good at once, and doomed jobs used up their 3 attempts"
wait_for "the broken and doomed jobs were dead-lettered" all_logged "job dead-lettered" "${BROKEN[@]}" "${DOOMED[@]}"
wait_for "the dead-letter queue $QUEUE.dlq lists them" in_dlq "${BROKEN[@]}" "${DOOMED[@]}"

step "The dead-letter queue"
peek dlq list --queue "$QUEUE" --output table

step "Fixing the cause (the handler now finds $FIXED) and replaying the dead-letter queue"
touch "$FIXED"
show dlq replay --queue "$QUEUE" --all
wait_for "every replayed job succeeded" all_logged "job succeeded" "${BROKEN[@]}" "${DOOMED[@]}"
wait_for "the dead-letter queue no longer holds them" none_in_dlq "${BROKEN[@]}" "${DOOMED[@]}"
peek dlq list --queue "$QUEUE" --output table

step "Queue depths"
peek queues --queue "$QUEUE"

step "Pausing the queue: the worker takes none of its tasks, enqueueing still works"
show queue pause "$QUEUE"
worker_paused() { grep -qF 'msg="worker: queue paused' "$LOG"; }
wait_for "the worker saw the pause (it checks every 500ms)" worker_paused
enqueue email 4 '{"to":"barbara@example.com","template":"welcome"}'
ready_is() { "$WARREN" queues --queue "$QUEUE" --output json 2>/dev/null | grep -q "\"ready\": *$1[,}]"; }
wait_for "the new email waits in the paused queue" ready_is 1
logged "job succeeded" "${EMAIL[3]}" && die "the worker ran a task of the paused queue"
peek queues --queue "$QUEUE"
show queue resume "$QUEUE"
wait_for "the email ran once the queue was resumed" all_logged "job succeeded" "${EMAIL[3]}"

step "The dashboard and its HTTP API (warren dashboard; here on a free port, briefly)"
DASH_LOG="$WORK/dashboard.log"
"$WARREN" dashboard --listen 127.0.0.1:0 --queue "$QUEUE" 2>"$DASH_LOG" &
DASH_PID=$!
dash_url() { grep -oE 'http://127\.0\.0\.1:[0-9]+/' "$DASH_LOG" | head -n 1; }
dash_up() { [[ -n "$(dash_url)" ]]; }
wait_for "the dashboard serves" dash_up
DASH="$(dash_url)"
info "open ${DASH} in a browser to see the queues, dead letters and workers"
info "GET ${DASH}api/v1/queues/$QUEUE"
curl -fsS "${DASH}api/v1/queues/$QUEUE" | head -c 400 | sed 's/^/    /'
echo
kill "$DASH_PID" 2>/dev/null || true
wait "$DASH_PID" 2>/dev/null || true

step "Stopping the worker (SIGTERM: it finishes in-flight jobs, then exits)"
rc=0
stop_worker || rc=$?
stop_narrator
if ((rc == 0)); then info "worker exited cleanly"; else info "worker exited with status $rc"; fi

step "Summary"
count() { grep -F "msg=\"$1\"" "$LOG" | grep -cE "(^| )task_id=" || true; }
info "job succeeded:     $(count "job succeeded")"
info "job retrying:      $(count "job retrying")"
info "job dead-lettered: $(count "job dead-lettered")"

OK=1
step "Demo finished; cleaning up"
