# hearth: make run starts it on the sample config; make test runs every test.
GO ?= go
BIN := bin/hearth

.PHONY: run build test vet fmt clean

run: build
	./$(BIN) serve -config config.yaml

build:
	$(GO) build -o $(BIN) ./cmd/hearth

test: vet
	$(GO) test -race -count=1 ./...

vet:
	@test -z "$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go'))" || { echo "gofmt needed:"; gofmt -l .; exit 1; }
	$(GO) vet ./...

clean:
	rm -rf bin
