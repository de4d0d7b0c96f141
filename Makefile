# careflow — the two commands a newcomer needs are `make run` and `make test`.
GO       ?= go
BIN      := bin/careflow
DATA     ?= data
CONFIG   ?= examples/demo/careflow.yaml
FUZZTIME ?= 10s

.PHONY: all build deps run test test-short fuzz bench bench-backlog bench-micro bench-peers vet tools clean

all: build

build:
	$(GO) build -o $(BIN) ./cmd/careflow

# The engine on its embedded broker with the demo's simulated hospital
# systems; Ctrl-C stops both. Topics are readable with kcat on 127.0.0.1:9092.
# When clickhouse-server is installed, a local ClickHouse (data in
# $(DATA)/clickhouse) gets the analytics: try bin/careflow sla --config
# $(DATA)/careflow-demo.yaml.
run: build
	@cfg=$$(deploy/clickhouse/demo.sh start $(DATA) $(CONFIG)); \
	trap 'deploy/clickhouse/demo.sh stop $(DATA)' EXIT INT TERM; \
	$(BIN) run --config "$$cfg" --data $(DATA) --demo

# Every test, including the end-to-end and crash tests, then a brief fuzz
# of the HL7 parser and the MLLP reader.
test: vet deps
	$(GO) test -count=1 -timeout 12m ./...
	$(MAKE) fuzz

# The independent peers the tests talk to (kcat, mllp_send, ClickHouse,
# promtool), installed from Debian's packages when missing and run as root.
deps:
	@deploy/debian-deps.sh

vet:
	$(GO) vet ./...
	@test -z "$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go'))" || (gofmt -l . && echo "gofmt: files above need formatting" && exit 1)

test-short:
	$(GO) test -short -count=1 ./...

fuzz:
	$(GO) test -run '^$$' -fuzz '^FuzzParse$$' -fuzztime $(FUZZTIME) ./connectors/hl7v2
	$(GO) test -run '^$$' -fuzz '^FuzzReader$$' -fuzztime $(FUZZTIME) ./connectors/mllp

# The benchmark suite (issue 4, BENCHMARKS.md): careflow beside the
# machine's physical limits, each figure the median of 5 runs; writes
# bench/results.json and prints the markdown table. About 8–9 minutes on 2 cores.
bench:
	$(GO) run ./bench/suite -runs 5 -out bench/results.json

# Issue 4's full-size backlog, once (about 12 minutes on 2 cores, too long
# for make bench): the lab down while 1,000,000 messages arrive, then up;
# prints the drain rate and the engine's and the broker's peak memory as JSON.
bench-backlog:
	$(GO) run ./bench/suite -backlog-child 1000000

# Every go test micro-benchmark of the hot paths, 5 times (benchstat input).
bench-micro:
	$(GO) test -run '^$$' -bench . -benchmem -count 5 ./connectors/... ./avro/... ./stages/... | tee bench.out

# careflow's ingest beside peers that only ACK, with no persistence
# (bench/peers): an MLLP server on the npm package @medplum/hl7 and one on
# Debian's python3-hl7 (apt-get install python3-hl7); writes bench/peers.json.
bench-peers:
	cd bench/peers/medplum && npm install --no-audit --no-fund --silent
	$(GO) run ./bench/suite -peers -runs 5 -out bench/peers.json

clean:
	rm -rf bin $(DATA)
