# Every target uses the patched toolchain: these machines default to a local
# go1.26.8 with reachable standard-library vulnerabilities.
export GOTOOLCHAIN := go1.27.3

GO ?= go
BIN := bin/gatehouse
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -s -w -X main.version=$(VERSION)

.PHONY: run build test test-deps bench bench-ab bench-peers soak faults vet fuzz vulncheck

## run: build and start Gatehouse on SQLite in ./data (prints the first admin token)
run: build
	./$(BIN) serve

## build: compile the binary into bin/
build:
	$(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN) ./cmd/gatehouse

## test-deps: install the test-only tools (npm packages, Debian packages) when missing
test-deps:
	./scripts/test-deps.sh

## test: the CI set: every test on SQLite and PostgreSQL, end-to-end included
test: test-deps
	./scripts/test.sh

## vet
vet:
	$(GO) vet ./...

## bench: the go test benchmarks of the hot paths (long; not in `make test`)
bench:
	$(GO) test -run '^$$' -bench . -benchmem ./...

BENCH_FLAGS ?= -n 5000 -c 16 -duration 10s
BENCH_SCENARIOS ?= saml-jit,saml-returning,oidc-jit,oidc-returning,oidc-refused,app-broker,app-broker-form-post,token,refresh,scim-create,scim-sync,scim-filter

## bench-load: the load tool's scenarios against a Gatehouse process on SQLite, 10 s each (docs/benchmarks.md)
bench-load: build bench-tool
	./bin/gatehouse-bench -gatehouse $(BIN) -engine sqlite -sync NORMAL -scenario $(BENCH_SCENARIOS) -seed 100000 -idle $(BENCH_FLAGS)

## bench-load-full: every configuration of docs/benchmarks.md (SQLite NORMAL and FULL, PostgreSQL, two replicas)
bench-load-full: build bench-tool
	./bin/gatehouse-bench -gatehouse $(BIN) -engine sqlite -sync NORMAL -scenario $(BENCH_SCENARIOS),saml-sp -idle $(BENCH_FLAGS)
	./bin/gatehouse-bench -gatehouse $(BIN) -engine sqlite -sync FULL -scenario $(BENCH_SCENARIOS) $(BENCH_FLAGS)
	./bin/gatehouse-bench -gatehouse $(BIN) -engine postgres -scenario $(BENCH_SCENARIOS) -idle $(BENCH_FLAGS)
	./bin/gatehouse-bench -gatehouse $(BIN) -engine postgres -replicas 2 -scenario oidc-jit,app-broker,saml-jit,scim-create $(BENCH_FLAGS)
	# two replicas, each carrying the 16 concurrent flows one did above
	./bin/gatehouse-bench -gatehouse $(BIN) -engine postgres -replicas 2 -scenario oidc-jit,app-broker,saml-jit,scim-create $(BENCH_FLAGS) -c 32

## bench-ab: two binaries alternated through the load tool (OLD=... NEW=... [ROUNDS=2] [AB_FLAGS="-engine sqlite -scenario ..."])
bench-ab: bench-tool
	./scripts/bench-ab.sh $(OLD) $(NEW) $(or $(ROUNDS),2) -- $(AB_FLAGS)

## bench-peers: Gatehouse and other brokers side by side, app-broker, each at 16 and 64 concurrent flows and at its best of them (DEX=/path/to/dex [POLIS=/dir/with/saml-jackson] [GATEHOUSE="bin/gatehouse ..."] [ROUNDS=2] [CONCURRENCY="4 16 64"] [PEERS_FLAGS="-n 4000 -duration 6s"])
bench-peers: build bench-tool
	CONCURRENCY="$(or $(CONCURRENCY),16 64)" ./scripts/bench-peers.sh $(or $(ROUNDS),2) -- $(or $(PEERS_FLAGS),-n 4000 -duration 6s)

## bench-tool: build the load tool into bin/
bench-tool:
	$(GO) build -trimpath -o bin/gatehouse-bench ./cmd/gatehouse-bench

## faults: fault injection against the real binary: PostgreSQL down and
## crashed (a throwaway cluster of its own), kill -9 during writes, a slow,
## down or garbage-answering IdP (a few minutes; not in `make test`)
faults:
	$(GO) test -tags faults -count=1 -timeout 20m -run '^TestFault' -v ./e2e/

## soak: steady mixed load for SOAK_DURATION (default 10m), memory sampled
## into testing/artifacts/soak.csv and asserted flat
soak:
	$(GO) test -tags soak -count=1 -timeout 0 -run '^TestSoak' -v ./e2e/

## vulncheck: govulncheck against an offline vulnerability database
vulncheck:
	./scripts/vulncheck.sh

## fuzz: every fuzz target briefly (FUZZTIME=10m for longer)
fuzz:
	./scripts/fuzz-short.sh
