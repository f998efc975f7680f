# hearth: `make run` starts it on the sample config; `make test` runs every test.
GO  ?= go
BIN := bin/hearth
WEB := webclient

.PHONY: run build web test vet fuzz soak bench clean

run: build
	./$(BIN) serve -config config.yaml

# The web chat is bundled into webclient/dist, which the binary embeds.
build: web
	$(GO) build -o $(BIN) ./cmd/hearth

web: $(WEB)/node_modules/.package-lock.json
	cd $(WEB) && npm run build

$(WEB)/node_modules/.package-lock.json: $(WEB)/package.json $(WEB)/package-lock.json
	cd $(WEB) && npm ci --no-audit --no-fund

test: vet web
	$(GO) test -race -count=1 ./...

# Each fuzz target for FUZZTIME; crashers land in testdata/fuzz and then run
# with every `make test`.
FUZZTIME ?= 15s
FUZZ_TARGETS := .:FuzzParsePayload .:FuzzParseTopic .:FuzzCanSubscribe ./history:FuzzParseQuery ./history:FuzzPage
fuzz:
	@for t in $(FUZZ_TARGETS); do pkg=$${t%%:*}; name=$${t##*:}; \
		echo "== $$name ($$pkg)"; \
		$(GO) test -run XXX -fuzz "^$$name$$" -fuzztime $(FUZZTIME) $$pkg || exit 1; done

# Long stress runs: the 10 x 10,000 bursts (chat, and the conformance row
# on hearth and mosquitto, both protocol versions), and a race-prone test
# repeated.
SOAKCOUNT ?= 25
soak: web
	HEARTH_BURST_EACH=10000 $(GO) test -count=1 -timeout 30m -v -run 'TestBurstToSmallReceiveMaximum' ./cmd/hearth
	HEARTH_BURST_EACH=10000 $(GO) test -count=1 -timeout 30m -v -run 'TestConformance/burst' ./broker
	$(GO) test -race -count=$(SOAKCOUNT) -run 'TestPublishingSubscriber' ./cmd/hearth

# hearth against Debian's mosquitto, side by side (README: Performance);
# BENCHFLAGS passes flags to cmd/hearthbench, e.g. BENCHFLAGS="-rounds 5".
BENCHFLAGS ?=
bench: build
	$(GO) build -o bin/hearthbench ./cmd/hearthbench
	./bin/hearthbench -hearth $(BIN) $(BENCHFLAGS)
	$(GO) test -run XXX -bench . -benchtime 2s ./history ./broker .

vet:
	@test -z "$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go' -not -path './$(WEB)/node_modules/*'))" || { echo "gofmt needed:"; gofmt -l .; exit 1; }
	$(GO) vet ./...

clean:
	rm -rf bin $(WEB)/node_modules
	find $(WEB)/dist -mindepth 1 ! -name .gitkeep -delete
