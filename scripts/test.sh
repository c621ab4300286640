#!/usr/bin/env bash
# The project's test command, run by `make test` (and so by CI).
#
# It first installs whatever the checks need and is missing (ensure_deps),
# then runs, in order, and stops at the first failure:
#   gofmt -l, go vet, staticcheck, go test -race; then the same for the
#   bench/peers module, and vet, staticcheck and a build for bench/parquet.
#
# Run it from anywhere: it works from the repository root. On a fresh Debian
# machine it expects to run as root, so that it can install packages.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

# honnef.co/go/tools release that provides staticcheck; v0.8.2 (staticcheck
# 2026.2.2) builds with Go 1.26.
STATICCHECK_VERSION=v0.8.2

# Timeout for the whole `go test` run; tests themselves never time anything.
TEST_TIMEOUT=${TEST_TIMEOUT:-30m}

step() { printf '\n==> %s\n' "$*"; }

# gobin prints the directory `go install` writes to: GOBIN, else the first
# GOPATH entry's bin.
gobin() {
	local dir
	dir=$(go env GOBIN)
	if [ -z "$dir" ]; then
		dir="$(go env GOPATH | cut -d: -f1)/bin"
	fi
	printf '%s\n' "$dir"
}

# ensure_go_tool NAME PACKAGE MODULE VERSION installs PACKAGE@VERSION with
# `go install` unless NAME is already in gobin, built from MODULE at VERSION.
ensure_go_tool() {
	local name=$1 pkg=$2 module=$3 want=$4 bin have
	bin="$(gobin)/$name"
	have=""
	if [ -x "$bin" ]; then
		have=$(go version -m "$bin" 2>/dev/null | awk -v m="$module" '$1 == "mod" && $2 == m { print $3 }')
	fi
	if [ "$have" = "$want" ]; then
		return 0
	fi
	echo "installing $pkg@$want (found: ${have:-none})"
	go install "$pkg@$want"
}

# apt_install PACKAGE... installs Debian PACKAGEs. apt-get update runs once,
# before the first install.
apt_updated=""
apt_install() {
	if [ -z "$apt_updated" ]; then
		apt-get update
		apt_updated=1
	fi
	DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "$@"
}

# ensure_apt COMMAND PACKAGE... installs the Debian PACKAGEs when COMMAND is
# not on PATH.
ensure_apt() {
	local cmd=$1
	shift
	if command -v "$cmd" >/dev/null 2>&1; then
		return 0
	fi
	echo "installing $* (for $cmd)"
	apt_install "$@"
}

# ensure_python_module MODULE PACKAGE... installs the Debian PACKAGEs when
# Debian's python3 (/usr/bin/python3, not a python3 that may come first on
# PATH) cannot import MODULE.
ensure_python_module() {
	local module=$1
	shift
	if [ -x /usr/bin/python3 ] && /usr/bin/python3 -c "import $module" >/dev/null 2>&1; then
		return 0
	fi
	echo "installing $* (for python module $module)"
	apt_install "$@"
}

# ensure_npm DIR runs npm ci in DIR, which installs exactly the packages of
# DIR/package-lock.json, unless that was done since the lock file last
# changed (npm writes node_modules/.package-lock.json as it installs).
ensure_npm() {
	local dir=$1 installed
	installed="$dir/node_modules/.package-lock.json"
	if [ -f "$installed" ] && ! [ "$dir/package-lock.json" -nt "$installed" ]; then
		return 0
	fi
	echo "installing the npm packages of $dir"
	(cd "$dir" && npm ci --no-audit --no-fund)
}

# ensure_deps installs what the tests need and is missing. Extend it when a
# test needs a new tool.
ensure_deps() {
	if ! command -v go >/dev/null 2>&1; then
		echo "go is not on PATH; install Go 1.26 or later" >&2
		exit 1
	fi
	ensure_go_tool staticcheck honnef.co/go/tools/cmd/staticcheck honnef.co/go/tools "$STATICCHECK_VERSION"
	# Outside Kafka clients for e2e/kafkaclients (which fails without them
	# when CI is set): kcat and confluent-kafka-python, both on librdkafka,
	# and kafka-python, from Debian; kafkajs from npm, pinned by the lock
	# file in its folder.
	ensure_apt kcat kcat
	ensure_python_module confluent_kafka python3-confluent-kafka
	# kafka-python, the pure-Python client, and the codec modules it
	# compresses with (snappy, lz4, zstd), from Debian.
	ensure_python_module "kafka, snappy, lz4.frame, zstandard" python3-kafka python3-snappy python3-lz4 python3-zstandard
	ensure_apt node nodejs
	ensure_apt npm npm
	ensure_npm e2e/kafkaclients/testdata/js
	# redis-server and rabbitmq-server for bench/peers, whose tests compare
	# Sense with Redis Streams and RabbitMQ Streams (they fail without them
	# when CI is set). The tests start their own servers on loopback ports;
	# the Debian package's service is not used.
	ensure_apt redis-server redis-server
	ensure_apt rabbitmq-server rabbitmq-server
	# curl for edge/httpedge, whose tests post and read events with
	# --http2-prior-knowledge and --http1.1 (they fail without it when CI
	# is set).
	ensure_apt curl curl
	# PostgreSQL for the processors' postgres sink (processor/, e2e/),
	# started by internal/pgtest from its binaries under
	# /usr/lib/postgresql/N/bin (the tests fail without it when CI is
	# set).
	# DuckDB (npm @duckdb/node-api, pinned by the lock file) reads the file
	# sink's Parquet files back in processor/ and e2e/.
	ensure_npm processor/testdata/duckdb
	# ClickHouse for the processors' clickhouse sink, started by
	# internal/chtest from /usr/sbin/clickhouse-server.
	if ! [ -x /usr/sbin/clickhouse-server ]; then
		echo "installing clickhouse-server (for the processors' clickhouse sink)"
		apt_install clickhouse-server
	fi
	if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
		echo "installing postgresql (for the processors' postgres sink)"
		apt_install postgresql
	fi
}

main() {
	step "dependencies"
	ensure_deps

	# Files under testdata/ may be broken on purpose, so they are skipped.
	step "gofmt -l"
	local unformatted
	unformatted=$(find . \( -name .git -o -name testdata \) -prune -o -name '*.go' -type f -print0 |
		xargs -0 -r gofmt -l)
	if [ -n "$unformatted" ]; then
		echo "these files need gofmt -w:" >&2
		printf '%s\n' "$unformatted" >&2
		exit 1
	fi

	step "go vet ./..."
	go vet ./...

	step "staticcheck ./..."
	"$(gobin)/staticcheck" ./...

	step "go test -race ./..."
	go test -race -timeout "$TEST_TIMEOUT" ./...

	# bench/peers is its own module (go.work puts it beside the root
	# module), so ./... above does not reach it. GOWORK=off checks that its
	# go.mod and go.sum build it alone (-o /dev/null: no binary left behind).
	step "bench/peers: go vet, staticcheck, go build with GOWORK=off, go test -race"
	(
		cd bench/peers
		go vet ./...
		"$(gobin)/staticcheck" ./...
		GOWORK=off go build -o /dev/null ./...
		go test -race -timeout "$TEST_TIMEOUT" ./...
	)

	# bench/parquet, the Parquet libraries' comparison, is a module of its
	# own too (arrow-go stays out of the sense binary): vet, staticcheck and
	# a build of its benchmarks with GOWORK=off.
	step "bench/parquet: go vet, staticcheck, go test -run none with GOWORK=off"
	(
		cd bench/parquet
		go vet ./...
		"$(gobin)/staticcheck" ./...
		GOWORK=off go test -run none ./...
	)
}

main "$@"
