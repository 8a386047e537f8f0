#!/usr/bin/env bash
# ensure-test-deps.sh - install what the integration tests need besides
# RabbitMQ (scripts/ensure-rabbitmq.sh) when it is missing:
#   python3-pika  Debian's, for /usr/bin/python3: the hostile-message tests
#                 publish with a non-Go AMQP client.
#   chromium      Debian's, /usr/bin/chromium: the dashboard's browser tests
#                 (internal/browsertest) drive it headless. $WARREN_CHROMIUM
#                 names another browser instead; then it is only checked.
#                 fonts-liberation comes with it, so that pages have a font.
# As root it runs apt-get; otherwise it prints what to run and exits 1.
set -euo pipefail

missing=()
/usr/bin/python3 -c 'import pika' >/dev/null 2>&1 || missing+=(python3-pika)
if [[ -n "${WARREN_CHROMIUM:-}" ]]; then
	if ! command -v "$WARREN_CHROMIUM" >/dev/null 2>&1; then
		echo "test deps: WARREN_CHROMIUM=$WARREN_CHROMIUM is not an executable; unset it to use Debian's chromium" >&2
		exit 1
	fi
elif [[ ! -x /usr/bin/chromium ]]; then
	missing+=(chromium fonts-liberation) # a font, for legible screenshots
fi
((${#missing[@]} == 0)) && { echo "test deps: present"; exit 0; }

if [[ "$(id -u)" == "0" ]] && command -v apt-get >/dev/null 2>&1; then
	echo "test deps: installing ${missing[*]}"
	apt-get update -qq
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}"
elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
	sudo -n apt-get update -qq
	sudo -n env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}"
else
	echo "test deps: missing ${missing[*]}; run: sudo apt-get install -y ${missing[*]}" >&2
	exit 1
fi
