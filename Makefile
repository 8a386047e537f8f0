# Warren build, test and demo targets.
#
#   make build             build bin/warren
#   make test              ensure RabbitMQ, python3-pika and chromium, vet, docs check, unit, integration, fuzz, bounded chaos
#   make test-unit         unit tests only (no broker needed)
#   make test-integration  ensure RabbitMQ, then the integration tests
#   make chaos             the chaos suite (CHAOS_JOBS, CHAOS_DURATION)
#   make fuzz              every fuzz target for FUZZTIME
#   make demo              ensure RabbitMQ, build, run scripts/demo.sh
#   make fmt | lint | clean
#
# Integration tests read WARREN_TEST_URL (default amqp://guest:guest@127.0.0.1:5672/)
# from the environment; make passes the environment through unchanged.

GO                ?= go
GOFMT             ?= gofmt
BIN               ?= bin/warren
UNIT_FLAGS        ?= -race -count=1
INTEGRATION_FLAGS ?=
FUZZTIME          ?= 5s

GO_FILES = find . -name '*.go' -not -path './.git/*' -not -path './vendor/*' -not -path './bin/*'

.PHONY: ensure-test-deps all build test test-unit test-integration fuzz chaos docs-check vet vet-integration ensure-rabbitmq demo fmt lint clean

all: build

build:
	$(GO) build -o $(BIN) ./cmd/warren

ensure-rabbitmq:
	bash scripts/ensure-rabbitmq.sh

# ensure-test-deps: what integration tests need besides RabbitMQ (python3-pika, chromium).
ensure-test-deps:
	bash scripts/ensure-test-deps.sh

vet:
	$(GO) vet ./...

vet-integration:
	$(GO) vet -tags integration ./...

test: ensure-rabbitmq ensure-test-deps vet vet-integration docs-check
	$(GO) test $(UNIT_FLAGS) ./...
	$(GO) test -race -count=1 -tags integration -timeout 20m -p 1 $(INTEGRATION_FLAGS) ./...
	FUZZTIME=$(FUZZTIME) bash scripts/fuzz.sh
	$(MAKE) chaos

# chaos: the chaos suite on private RabbitMQ nodes. Bounded by default
# (about 7 minutes; part of make test); scale it with
# CHAOS_JOBS=100002 CHAOS_DURATION=10m make chaos (docs/reliability.md).
chaos:
	$(GO) vet -tags chaos ./internal/chaos/...
	bash scripts/chaos.sh

# fuzz: every fuzz target for FUZZTIME (default 5s) each.
fuzz:
	FUZZTIME=$(FUZZTIME) bash scripts/fuzz.sh

# docs-check: docs/cli.md must match the CLI's --help.
docs-check:
	bash scripts/gen-cli-docs.sh --check

test-unit:
	$(GO) test $(UNIT_FLAGS) ./...

test-integration: ensure-rabbitmq ensure-test-deps
	$(GO) test -race -count=1 -tags integration -timeout 20m -p 1 $(INTEGRATION_FLAGS) ./...

demo: ensure-rabbitmq build
	WARREN_BIN=$(BIN) bash scripts/demo.sh

fmt:
	@files="$$($(GO_FILES))"; [ -z "$$files" ] || $(GOFMT) -w $$files

lint: vet vet-integration
	@files="$$($(GO_FILES))"; out="$$([ -z "$$files" ] || $(GOFMT) -l $$files)"; \
	if [ -n "$$out" ]; then echo "gofmt needs to be run on:"; echo "$$out"; exit 1; fi

clean:
	rm -rf bin
