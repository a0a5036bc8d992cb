# shoal — make targets. `make test` runs every test (unit and e2e with real
# engines; e2e needs root, docker.io and busybox-static: see .ci/run).
GO        ?= go
BIN       := bin/shoal
DEMO      := $(GO) run ./test/testbed/cmd/shoal-demo
E2E_TIMEOUT ?= 20m

.PHONY: all build test unit e2e vet demo demo-down bench clean

all: build

COMMIT    := $(shell git rev-parse --short HEAD 2>/dev/null || echo unknown)

build:
	$(GO) build -ldflags "-X github.com/shoal-dev/shoal/internal/cli.GitCommit=$(COMMIT)" -o $(BIN) ./cmd/shoal

vet:
	$(GO) vet ./...

# unit: the packages' own tests, the test harness's, and the manager
# scenarios over simulated engines (test/scenario, shoal in-process): no
# root, no dockerd.
unit:
	$(GO) test -count=1 $$($(GO) list ./... | grep -v /test/) ./test/shoaltest/ ./test/scenario/

e2e: build
	$(GO) test -count=1 -p 1 -timeout $(E2E_TIMEOUT) ./test/...

test: vet unit e2e

# One command: three real engines in network namespaces with shoal in front.
demo: build
	$(DEMO) up --shoal $(BIN)

demo-down:
	$(DEMO) down

bench: build
	$(GO) test -run '^$$' -bench . -benchtime 2s ./internal/scheduler/
	./scripts/bench-proxy.sh

clean:
	rm -rf bin
