# Developer entry points. `make test` is the one CI runs.

GO ?= go
# Release version stamped into the binary; empty (no tag) means the binary
# falls back to its build information, then "dev".
VERSION ?= $(shell git describe --tags --dirty 2>/dev/null)
# How long `make fuzz` runs each fuzz target.
FUZZTIME ?= 10s

.DEFAULT_GOAL := build
.PHONY: build test bench fuzz chaos

## build: build the sense binary into bin/sense
build:
	$(GO) build -trimpath -ldflags '-X main.version=$(VERSION)' -o bin/sense ./cmd/sense

## test: install missing test tools, then gofmt, go vet, staticcheck, go test -race
test:
	bash scripts/test.sh

## chaos: the randomized fault test of a 3-process cluster for CHAOS_DURATION
## (make test runs it for 8s); SENSE_CHAOS_SEED=N replays a run's faults
CHAOS_DURATION ?= 5m
chaos:
	SENSE_CHAOS_DURATION=$(CHAOS_DURATION) $(GO) test -count=1 -timeout 0 -run '^TestClusterChaos$$' -v ./e2e/

## bench: run every benchmark once, with allocation counts
bench:
	$(GO) test -run '^$$' -bench . -benchmem ./...

## fuzz: run each fuzz target for FUZZTIME (a smoke run, not a campaign)
fuzz:
	@set -e; \
	for file in $$(grep -rlE --include='*_test.go' --exclude-dir=testdata --exclude-dir=.git '^func Fuzz[A-Za-z0-9_]*\(' .); do \
		dir=$$(dirname "$$file"); \
		for target in $$(sed -nE 's/^func (Fuzz[A-Za-z0-9_]*)\(.*/\1/p' "$$file"); do \
			echo "==> $$target ($$dir, $(FUZZTIME))"; \
			$(GO) test -run '^$$' -fuzz "^$$target\$$" -fuzztime $(FUZZTIME) "$$dir"; \
		done; \
	done
