# Developer entry points. `make test` is the one CI runs.

GO ?= go
# Release version stamped into the binary; empty (no tag) means the binary
# falls back to its build information, then "dev".
VERSION ?= $(shell git describe --tags --dirty 2>/dev/null)
# How long `make fuzz` runs each fuzz target.
FUZZTIME ?= 10s

.DEFAULT_GOAL := build
.PHONY: build test bench fuzz

## build: build the sense binary into bin/sense
build:
	$(GO) build -trimpath -ldflags '-X main.version=$(VERSION)' -o bin/sense ./cmd/sense

## test: install missing test tools, then gofmt, go vet, staticcheck, go test -race
test:
	bash scripts/test.sh

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
