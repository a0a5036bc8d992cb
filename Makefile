# shoal — make targets. `make test` runs every test (unit and e2e with real
# engines; e2e needs root, docker.io and busybox-static: see .ci/run).
GO        ?= go
BIN       := bin/shoal
DEMO      := $(GO) run ./test/testbed/cmd/shoal-demo
E2E_TIMEOUT ?= 20m
# End-to-end packages run two at a time: each starts engines, shoal and
# clusters of its own (namespaces, addresses, ports and data directories
# are never shared), and they mostly wait on them, so two fit 2 cores.
E2E_PARALLEL ?= 2

.PHONY: all build console test unit e2e vet demo demo-deps demo-federation demo-down bench bench-federation bench-scale fuzz clean

all: build

COMMIT    := $(shell git rev-parse --short HEAD 2>/dev/null || echo unknown)

# The web console (web/, an npm project) is built into internal/ui/dist,
# which the binary embeds; without it a plain `go build` embeds a
# placeholder page that says the console was not built.
CONSOLE   := internal/ui/dist/app.js

build: console
	$(GO) build -ldflags "-X github.com/shoal-dev/shoal/internal/cli.GitCommit=$(COMMIT)" -o $(BIN) ./cmd/shoal

console: $(CONSOLE)

web/node_modules/.ci-stamp: web/package.json web/package-lock.json
	cd web && npm ci --no-audit --no-fund --loglevel=error
	touch $@

$(CONSOLE): web/node_modules/.ci-stamp web/build.mjs $(wildcard web/src/*)
	cd web && npm run build --silent

vet:
	$(GO) vet ./...

# unit: the packages' own tests, the test harness's, and the manager
# scenarios over simulated engines (test/scenario, shoal in-process): no
# root, no dockerd.
unit:
	$(GO) test -count=1 $$($(GO) list ./... | grep -v /test/) ./test/shoaltest/ ./test/scenario/

e2e: build
	$(GO) test -count=1 -p $(E2E_PARALLEL) -timeout $(E2E_TIMEOUT) ./test/...

test: vet unit e2e

# One command: three real engines in network namespaces with shoal in front,
# then a service created (3 replicas) and scaled to 6 through it
# (scripts/demo-services.sh); engines, shoal and the service stay up for you.
# On a bare Debian machine with Go it first installs what it needs
# (scripts/demo-deps.sh: docker.io, busybox-static, iproute2, iptables,
# node/npm for the console; services installed, not started).
demo: demo-deps build
	$(DEMO) up --shoal $(BIN)
	DOCKER_HOST=tcp://127.0.0.1:2375 ./scripts/demo-services.sh
	@echo "web console: http://127.0.0.1:2375/ui/"

demo-deps:
	./scripts/demo-deps.sh

# A shoal of shoals: member siteA (region=eu) over node1 and node2, member
# siteB (region=us) over node3, and the shoal on :2375 over the two members
# (docs/federation.md). `make demo-down` removes it too.
demo-federation: demo-deps build
	$(DEMO) up --federation --shoal $(BIN)

demo-down:
	$(DEMO) down

bench: build
	$(GO) test -run '^$$' -bench . -benchtime 2s ./internal/scheduler/
	./scripts/bench-proxy.sh

# Federation (issue 14): one level's overhead on a real engine, then members
# of simulated engines under a top shoal (BENCH_FED_ARGS='--sizes "10 30 100"').
bench-federation: build
	./scripts/bench-federation.sh $(BENCH_FED_ARGS)

# Scale (issue 16): one shoal over 1,000 then 10,000 simulated engines, the
# fleet in child processes (BENCH_SCALE_ARGS='--sizes 1000'); under 10
# minutes per size on 2 cores. The CI runs TestScaleSmall and
# TestScaleFleetSmall (make e2e) as its smoke version.
bench-scale:
	./scripts/bench-scale.sh $(BENCH_SCALE_ARGS)

# fuzz: every Go fuzz target (func FuzzXxx in a package's fuzz_test.go) for
# FUZZTIME each, one after another. Plain `go test` (make unit) runs only
# their seed corpus and testdata/fuzz; a crash found here is written to the
# package's testdata/fuzz/FuzzXxx/, to be kept with the fix.
FUZZTIME  ?= 1m
FUZZPKGS  := $(shell grep -l '^func Fuzz' $$(find internal -name fuzz_test.go) 2>/dev/null | xargs -r -n1 dirname | sort -u)

fuzz:
	@set -e; for pkg in $(FUZZPKGS); do \
		for t in $$(sed -n 's/^func \(Fuzz[A-Za-z0-9_]*\)(.*/\1/p' $$pkg/fuzz_test.go); do \
			echo "== $$pkg $$t ($(FUZZTIME))"; \
			$(GO) test -run '^$$' -fuzz "^$$t\$$" -fuzztime $(FUZZTIME) ./$$pkg/; \
		done; \
	done

clean:
	rm -rf bin
