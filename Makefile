# Obelisk in Go. `make run` and `make test` are all a fresh machine with Go needs.
GO        ?= go
BIN       := bin/obelisk
WASM_DIR  := build/components
COMPONENTS := fibo fibo-workflow fibo-workflow-v2 sleep sleep-workflow http http-workflow flaky tree fibo-webhook line-trigger
WASMS     := $(addprefix $(WASM_DIR)/,$(addsuffix .wasm,$(COMPONENTS)))
# Tests and benchmarks use the binary and components built here.
BENCH_ENV := OBELISK_BIN=$(abspath $(BIN)) OBELISK_COMPONENTS=$(abspath $(WASM_DIR))
GO_SRC    := $(shell find . -name '*.go' -not -path './build/*' -not -path './bin/*') $(wildcard webui/static/*) go.mod go.sum

.PHONY: all build run test test-cluster test-short bench proto schemas clean components bindings c-components

all: build c-components

build: $(BIN) components

$(BIN): $(GO_SRC)
	$(GO) build -o $@ ./cmd/obelisk

components: $(WASMS)

# A component is a Go reactor module (GOOS=wasip1) with its WIT folder embedded.
$(WASM_DIR)/%.wasm: $(BIN) $(shell find test/components sdk/go -type f)
	@mkdir -p $(WASM_DIR)
	GOOS=wasip1 GOARCH=wasm $(GO) build -buildmode=c-shared -o $@.tmp ./test/components/$*
	$(BIN) component embed-wit test/components/$*/wit $@.tmp -o $@
	@rm -f $@.tmp

# Components in other languages (examples/c-activity, docs/abi.md without an SDK), built
# when their toolchain is installed (.ci/run installs it); their e2e test skips otherwise.
c-components: $(BIN)
	@if $(MAKE) -s -C examples/c-activity check >/dev/null 2>&1; then \
		$(MAKE) --no-print-directory -C examples/c-activity OBELISK=$(abspath $(BIN)) OUT=$(abspath $(WASM_DIR))/c-activity.wasm; \
	else \
		echo "c-components: no clang/wasi-libc for wasm32-wasi, skipping examples/c-activity (apt-get install clang lld wasi-libc libclang-rt-dev-wasm32)"; \
	fi

# Runs the server on the example deployment, storing everything under ./obelisk-data.
run: build
	$(BIN) server run --config examples/obelisk.toml

# Unit and integration tests, including end-to-end tests of the real server.
test: build c-components
	$(BENCH_ENV) $(GO) test -count=1 -timeout 15m ./...

# Clusters of real server processes on loopback (issue 14; build tag "cluster"): minutes,
# so apart from `test`. .ci/run calls it after `make test`.
test-cluster: build
	$(BENCH_ENV) $(GO) test -tags cluster -count=1 -timeout 20m ./test/cluster/

# Benchmarks of the real server; figures go to docs/benchmarks.md.
bench: build
	$(BENCH_ENV) $(GO) test -count=1 -run '^$$' -bench 'InstanceStart|ActivityRun' -benchtime 200x ./test/bench/
	$(BENCH_ENV) $(GO) test -count=1 -run '^$$' -bench 'FiboaSequential|Throughput|FiboaConcurrent|SleepDurable|Keepalive|Replay|WatchEvents|WebhookThroughput|WebhookBody|ServerStart|Retention|KV|OCI|Backpressure' -benchtime 1x -timeout 30m ./test/bench/

# Regenerates the Go bindings the example components use (obelisk generate go-bindings).
bindings: $(BIN)
	$(BIN) generate go-bindings test/components/fibo/wit --package fibo --out test/components/fibo-workflow/internal/fibo/fibo_gen.go

# Regenerates the protobuf and connect code (needs protoc, protoc-gen-go, protoc-gen-connect-go):
# the public API (proto/obelisk/v1) and the storage schema (proto/obelisk/storage/v1), which
# is versioned apart from the API (docs/RATIONALE.md).
proto:
	protoc -I proto --go_out=. --go_opt=module=github.com/obelisk-go/obelisk \
		--connect-go_out=. --connect-go_opt=module=github.com/obelisk-go/obelisk \
		proto/obelisk/v1/*.proto proto/obelisk/storage/v1/*.proto

# Regenerates the JSON Schemas of the API, the event views and the state (docs/schemas)
# from the code; a unit test fails while the committed ones are stale.
schemas:
	$(GO) run ./cmd/obelisk generate schemas --out docs/schemas

clean:
	rm -rf bin build
