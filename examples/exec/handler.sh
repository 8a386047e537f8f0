#!/bin/sh
# handler.sh - an external handler for `warren worker --exec`.
#
# The worker runs this script once per task:
#   stdin                the payload, byte for byte (JSON for these tasks)
#   WARREN_TASK_ID            the task ID (AMQP message_id)
#   WARREN_TASK_TYPE          the task type (AMQP type)
#   WARREN_TASK_QUEUE         the queue it came from
#   WARREN_TASK_ATTEMPT       1 on the first run, 2 on the first retry, ...
#   WARREN_TASK_MAX_ATTEMPTS  the producer's cap, only when it set one
# (earlier versions named the last three WARREN_QUEUE, WARREN_ATTEMPT and
# WARREN_MAX_ATTEMPTS, which the warren CLI reads as its own --queue and
# --max-attempts)
# and reads the exit status:
#   0                    done: the task is acked
#   65 (EX_DATAERR)      permanent failure: straight to the dead-letter queue
#   anything else        failure: retried after a backoff while attempts remain
# stderr (its last 2 KiB) becomes the recorded error of a failed run; stdout
# is logged at debug level.
#
# Run it on the queue the example producer fills (see examples/README.md):
#
#   go run ./examples/producer -queue examples
#   warren worker --queue examples --exec "sh examples/exec/handler.sh" \
#       --retry-base 1s --retry-cap 5s
#
# The worker's environment reaches the script without WARREN_URL and other
# secrets. No jq needed: the JSON is matched with sed, good enough for a demo.
set -u

payload=$(cat)

# field NAME -> the string value of "NAME":"..." in the payload, or empty.
field() {
	printf '%s' "$payload" | sed -n 's/.*"'"$1"'"[[:space:]]*:[[:space:]]*"\([^"]*\)".*/\1/p'
}

log() { echo "handler.sh: $WARREN_TASK_TYPE $WARREN_TASK_ID attempt $WARREN_TASK_ATTEMPT${WARREN_TASK_MAX_ATTEMPTS:+/$WARREN_TASK_MAX_ATTEMPTS}: $*" >&2; }

case "$WARREN_TASK_TYPE" in
email:send)
	to=$(field to)
	if [ -z "$to" ]; then
		log "no recipient in $payload; giving up"
		exit 65
	fi
	log "sending \"$(field subject)\" to $to"
	exit 0
	;;
report:build)
	if [ "$WARREN_TASK_ATTEMPT" -lt 3 ]; then
		log "warehouse not ready (failing on purpose until attempt 3)"
		exit 1
	fi
	log "report for $(field month) built"
	exit 0
	;;
thumbnail:make)
	exit 0
	;;
*)
	log "no handler for this task type"
	exit 65
	;;
esac
