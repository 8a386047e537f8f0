#!/usr/bin/env bash
# ensure-rabbitmq.sh - make sure a RabbitMQ broker answers for Warren.
#
# Target: the host:port of $WARREN_URL if set, else 127.0.0.1:5672.
# (The password in WARREN_URL is never printed.)
#
#   1. If the port answers: "rabbitmq: already running", wait for the node to
#      finish booting (rabbitmqctl await_startup), exit 0.
#   2. Else, for a local target on the default port 5672:
#        - rabbitmq-server installed  -> start it with `rabbitmq-server -detached`
#          (as root, or via `sudo -n`), wait up to $ENSURE_RABBITMQ_TIMEOUT s.
#        - not installed and root     -> apt-get install rabbitmq-server, start it.
#        - otherwise                  -> print what to run, exit 1.
#   3. A remote target, or a local one on another port, is only checked:
#      this script never starts anything but the default local node.
#
# Environment:
#   WARREN_URL                 amqp://user:pass@host:port/vhost (optional)
#   ENSURE_RABBITMQ_TIMEOUT    seconds to wait for startup (default 120)
#   ENSURE_RABBITMQ_DRY_RUN=1  print what would be done, change nothing
set -euo pipefail

TIMEOUT="${ENSURE_RABBITMQ_TIMEOUT:-120}"
DRY_RUN="${ENSURE_RABBITMQ_DRY_RUN:-0}"
[[ "$DRY_RUN" == "0" || "$DRY_RUN" == "" || "$DRY_RUN" == "false" ]] && DRY_RUN=0 || DRY_RUN=1

log() { printf 'rabbitmq: %s\n' "$*"; }
err() { printf 'rabbitmq: %s\n' "$*" >&2; }

# run CMD... : execute, or in dry-run mode only show it.
run() {
	if ((DRY_RUN)); then
		printf 'rabbitmq: [dry-run] would run: %s\n' "$*"
	else
		"$@"
	fi
}

# --- target host:port, parsed from WARREN_URL without echoing credentials ---
HOST=127.0.0.1
PORT=5672
if [[ -n "${WARREN_URL:-}" ]]; then
	url="$WARREN_URL"
	scheme=amqp
	if [[ "$url" == *://* ]]; then
		scheme="${url%%://*}"
		url="${url#*://}"
	fi
	authority="${url%%[/?#]*}"   # drop /vhost, ?query, #fragment
	hostport="${authority##*@}"  # drop user:password@
	default_port=5672
	[[ "${scheme,,}" == "amqps" ]] && default_port=5671
	if [[ "$hostport" == \[* ]]; then # [ipv6]:port
		HOST="${hostport#\[}"
		HOST="${HOST%%\]*}"
		rest="${hostport#*\]}"
		PORT="${rest#:}"
	elif [[ "$hostport" == *:* ]]; then
		HOST="${hostport%%:*}"
		PORT="${hostport##*:}"
	else
		HOST="$hostport"
		PORT=""
	fi
	[[ -n "$HOST" ]] || HOST=127.0.0.1
	[[ -n "$PORT" ]] || PORT="$default_port"
	if ! [[ "$PORT" =~ ^[0-9]+$ ]]; then
		err "cannot parse a port from WARREN_URL (host '$HOST'); expected amqp://user:pass@host:port/vhost"
		exit 2
	fi
fi
TARGET="$HOST:$PORT"
[[ "$HOST" == *:* ]] && TARGET="[$HOST]:$PORT"

port_answers() {
	# shellcheck disable=SC2016 # $1/$2 expand in the child bash
	timeout 3 bash -c 'exec 3<>"/dev/tcp/$1/$2"' _ "$HOST" "$PORT" 2>/dev/null
}

is_local_host() {
	case "$HOST" in
	localhost | 127.* | ::1 | 0.0.0.0) return 0 ;;
	esac
	[[ "$HOST" == "$(hostname 2>/dev/null || true)" || "$HOST" == "$(hostname -s 2>/dev/null || true)" ]]
}

IS_ROOT=0
[[ "$(id -u)" == "0" ]] && IS_ROOT=1

# Prefer the /usr/sbin wrappers: as root they switch to the rabbitmq user and
# its home, so the node's files and Erlang cookie keep the right owner.
find_tool() { # find_tool NAME -> prints path or returns 1
	local name="$1" p
	for p in "/usr/sbin/$name" "/usr/lib/rabbitmq/bin/$name"; do
		if [[ -x "$p" ]]; then
			printf '%s\n' "$p"
			return 0
		fi
	done
	p="$(command -v "$name" 2>/dev/null || true)"
	if [[ -n "$p" && -x "$p" ]]; then
		printf '%s\n' "$p"
		return 0
	fi
	return 1
}

# Run a command with root rights: directly as root, else via passwordless sudo.
as_root() {
	if ((IS_ROOT)); then
		run "$@"
	elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
		run sudo -n "$@"
	else
		return 99
	fi
}

# The node is only usable for quorum queues once fully booted; the AMQP port
# opens near the end of boot, await_startup closes the gap.
await_boot() {
	is_local_host || return 0
	local ctl
	ctl="$(find_tool rabbitmqctl)" || return 0
	if ! ((IS_ROOT)) && [[ "$(id -un)" != "rabbitmq" ]] && ! { command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; }; then
		log "skipping 'rabbitmqctl await_startup' (needs root or the rabbitmq user); the port answers"
		return 0
	fi
	local pre=()
	if ! ((IS_ROOT)) && [[ "$(id -un)" != "rabbitmq" ]]; then pre=(sudo -n); fi
	if ((DRY_RUN)); then
		run "${pre[@]}" timeout "$TIMEOUT" "$ctl" -q await_startup
		return 0
	fi
	if "${pre[@]}" timeout "$TIMEOUT" "$ctl" -q await_startup >/dev/null 2>&1; then
		log "node fully booted"
	else
		err "warning: 'rabbitmqctl await_startup' failed or timed out; the port answers, carrying on"
	fi
}

wait_for_port() {
	if ((DRY_RUN)); then
		log "[dry-run] would wait up to ${TIMEOUT}s for $TARGET, then run rabbitmqctl await_startup"
		return 0
	fi
	local start=$SECONDS deadline=$((SECONDS + TIMEOUT))
	log "waiting up to ${TIMEOUT}s for $TARGET ..."
	until port_answers; do
		if ((SECONDS >= deadline)); then
			err "RabbitMQ did not answer on $TARGET within ${TIMEOUT}s"
			err "look at /var/log/rabbitmq/ (startup_err, rabbit@*.log) for the cause"
			return 1
		fi
		sleep 1
	done
	log "port $TARGET answers after $((SECONDS - start))s"
	await_boot
}

how_to_fix() {
	err "to get a broker, run one of:"
	err "    sudo apt-get install -y rabbitmq-server && sudo rabbitmq-server -detached"
	err "    docker compose up -d rabbitmq      # from the repository root"
}

start_server() { # start_server PATH
	local server="$1"
	log "starting RabbitMQ: $server -detached"
	local rc=0
	as_root "$server" -detached || rc=$?
	if ((rc == 99)); then
		err "not root and passwordless sudo is unavailable; run this yourself:"
		err "    sudo $server -detached"
		exit 1
	elif ((rc != 0)); then
		err "'$server -detached' failed (exit $rc)"
		exit 1
	fi
	wait_for_port
}

# --- 1. already running? ---
if port_answers; then
	log "already running ($TARGET)"
	await_boot
	exit 0
fi

log "nothing answers on $TARGET"

# --- 2. only the default local node is ours to start ---
if ! is_local_host; then
	err "$HOST is not this machine; start the broker there (or unset WARREN_URL for a local one)"
	exit 1
fi
if [[ "$PORT" != "5672" ]]; then
	err "this script only starts the default local node (port 5672), not one on port $PORT"
	how_to_fix
	exit 1
fi

# Never start a second copy of a node that is already up: it may listen on
# another address (e.g. IPv4 only while the target is [::1]) or still be booting.
if [[ "$HOST" != "127.0.0.1" ]] && HOST=127.0.0.1 port_answers; then
	err "a local broker answers on 127.0.0.1:5672 but not on $TARGET; use amqp://...@127.0.0.1:5672/ in WARREN_URL"
	exit 1
fi
if ctl="$(find_tool rabbitmqctl)" && { ((IS_ROOT)) || [[ "$(id -un)" == "rabbitmq" ]]; } &&
	timeout 20 "$ctl" -q ping >/dev/null 2>&1; then
	log "the local node is running but its AMQP port is not open yet"
	wait_for_port
	exit 0
fi

if server="$(find_tool rabbitmq-server)"; then
	start_server "$server"
	exit 0
fi

# --- 3. not installed: install it if we can ---
if ((IS_ROOT)) && command -v apt-get >/dev/null 2>&1; then
	log "rabbitmq-server is not installed; installing it with apt-get"
	run apt-get update
	if ((DRY_RUN)); then
		run env DEBIAN_FRONTEND=noninteractive apt-get install -y rabbitmq-server
	else
		DEBIAN_FRONTEND=noninteractive apt-get install -y rabbitmq-server
	fi
	# The package's postinst may already have started it (where services may start).
	if ! ((DRY_RUN)) && port_answers; then
		log "started by the package install ($TARGET)"
		await_boot
		exit 0
	fi
	if ((DRY_RUN)); then
		start_server /usr/sbin/rabbitmq-server
		exit 0
	fi
	server="$(find_tool rabbitmq-server)" || {
		err "rabbitmq-server still not found after apt-get install"
		exit 1
	}
	start_server "$server"
	exit 0
fi

err "rabbitmq-server is not installed and this script is not running as root"
how_to_fix
exit 1
