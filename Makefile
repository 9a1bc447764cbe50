# tablelog — build, test, demo. Everything a fresh machine needs is installed here:
# Go modules through `go`, the Azurite emulator through npm from internal/azurite's lock file,
# Chromium (for the browser tests of `tablelog web`) through apt.

GO        ?= go
AZURITE   := internal/azurite
AZ_STAMP  := $(AZURITE)/node_modules/.installed
DEMO_DIR  := .azurite
DEMO_PORT ?= 10002
FUZZTIME  ?= 10s

.PHONY: test demo bench fuzz vet fmt-check tidy-check azurite chromium build clean demo-stop

## test: install what is missing, then vet, gofmt and go.mod checks, race tests, short fuzz runs
test: azurite chromium vet fmt-check tidy-check build
	$(GO) test -race -count=1 -timeout 20m ./...
	$(GO) test -count=1 -run 'Allocations$$' .
	$(MAKE) --no-print-directory fuzz FUZZTIME=$(FUZZTIME)

azurite: $(AZ_STAMP)

$(AZ_STAMP): $(AZURITE)/package.json $(AZURITE)/package-lock.json
	@command -v npm >/dev/null || { echo "npm is required to install the Azurite emulator (apt-get install nodejs npm)"; exit 1; }
	npm ci --prefix $(AZURITE) --no-audit --no-fund --loglevel=error
	@touch $@

## chromium: Debian's Chromium for the browser tests (cmd/tablelog web_browser_test.go); a missing
## browser fails those tests, it never skips them
chromium:
	@command -v chromium >/dev/null || command -v chromium-browser >/dev/null || [ -n "$$TABLELOG_TEST_CHROMIUM" ] || { \
	  if [ "$$(id -u)" = 0 ]; then apt-get update && apt-get install -y chromium; \
	  elif command -v sudo >/dev/null; then sudo apt-get update && sudo apt-get install -y chromium; \
	  else echo "Chromium is required for the browser tests of tablelog web: apt-get install -y chromium"; exit 1; fi; }

vet:
	$(GO) vet ./...

fmt-check:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go' -not -path './$(AZURITE)/node_modules/*')); \
	if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi

## tidy-check: go.mod and go.sum are what `go mod tidy` makes them (direct deps not // indirect)
tidy-check:
	@$(GO) mod tidy -diff || { echo "go.mod/go.sum are not tidy: run go mod tidy"; exit 1; }

## fuzz: each fuzz target for FUZZTIME (crashers land in testdata/fuzz and become regression cases)
fuzz:
	@set -e; for spec in $$(grep -rl --include='*_test.go' '^func Fuzz' . | grep -v node_modules); do \
	  dir=$$(dirname $$spec); \
	  for fn in $$(grep -h '^func Fuzz' $$spec | sed 's/func \(Fuzz[A-Za-z0-9_]*\).*/\1/'); do \
	    echo "fuzz $$dir $$fn ($(FUZZTIME))"; \
	    $(GO) test -run='^$$' -fuzz="^$$fn$$" -fuzztime=$(FUZZTIME) $$dir >/dev/null || { $(GO) test -run="^$$fn$$" $$dir; exit 1; }; \
	  done; \
	done

build:
	$(GO) build ./...

## bench: the comparison benchmarks, each against its baseline in the same run: Core/Handler
## (discarding table) and ClientCore/ClientHandler/ClientThroughput (tablelog.Client and
## *aztables.Client to an instant in-process endpoint) vs zap/slog JSON; EndToEnd against
## Azurite; Shards (throttling proxy); query (LogsRead: 100,000 records, client CPU per record),
## auditlog; web (first page vs Tail(100), page weight, live tail latency)
bench: azurite chromium
	{ $(GO) test -run='^$$' -bench='^Benchmark(Core|Handler)$$' -benchmem -count=5 ./sink && \
	  $(GO) test -run='^$$' -bench='^BenchmarkClient(Core|Handler)$$' -benchmem -count=5 ./sink && \
	  $(GO) test -run='^$$' -bench='^BenchmarkClientThroughput$$' -benchmem -benchtime=1x -count=1 -timeout 60m ./sink && \
	  $(GO) test -run='^$$' -bench='^BenchmarkEndToEnd$$' -benchmem -count=1 -timeout 60m ./sink && \
	  $(GO) test -run='^$$' -bench='^BenchmarkShards$$' -benchtime=1x -count=1 -timeout 30m ./sink && \
	  $(GO) test -run='^$$' -bench=. -benchmem -count=1 -timeout 60m ./query ./auditlog && \
	  $(GO) test -run='^$$' -bench='^BenchmarkWeb' -benchtime=50x -count=1 -timeout 20m ./cmd/tablelog; } | tee bench.out

## demo: start Azurite with disk persistence in .azurite/ and run the quickstart against it
demo: azurite
	@mkdir -p $(DEMO_DIR)
	@if ! (exec 3<>/dev/tcp/127.0.0.1/$(DEMO_PORT)) 2>/dev/null; then \
	  echo "starting Azurite on 127.0.0.1:$(DEMO_PORT) (data in $(DEMO_DIR)/, log in $(DEMO_DIR)/azurite.log)"; \
	  nohup $(AZURITE)/node_modules/.bin/azurite-table --tableHost 127.0.0.1 --tablePort $(DEMO_PORT) \
	    --location $(DEMO_DIR) --skipApiVersionCheck --disableTelemetry >$(DEMO_DIR)/azurite.log 2>&1 & echo $$! > $(DEMO_DIR)/pid; \
	  for i in $$(seq 1 50); do (exec 3<>/dev/tcp/127.0.0.1/$(DEMO_PORT)) 2>/dev/null && break; sleep 0.2; done; \
	fi
	$(GO) run ./examples/quickstart
	@echo
	@echo "Azurite keeps running (stop it with: make demo-stop). Read the logs back with:"
	@echo "  go run ./cmd/tablelog tail -s quickstart -n 20"

demo-stop:
	@if [ -f $(DEMO_DIR)/pid ]; then kill $$(cat $(DEMO_DIR)/pid) 2>/dev/null || true; rm -f $(DEMO_DIR)/pid; echo stopped; fi

clean:
	rm -rf $(DEMO_DIR) bench.out
