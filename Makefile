# Thin targets; CI runs `make test` through .ci/run.
SHELL := /bin/bash
GO ?= go
PORT ?= 4000
DATA ?= ./.data
# where make dev builds bootstrap for this machine
BIN ?= bin/bootstrap

.PHONY: dev watch test check generate build bench deploy package clean

## dev: build bootstrap, then run the local runtime on 127.0.0.1:$(PORT) with data in $(DATA); it
## prints its endpoints, the Lambda invoke endpoint (for EventBridge, SQS and SNS events, and
## bootstrap publish) among them; Ctrl-C stops it cleanly (the recipe execs the binary, which exits
## 0 on SIGINT and SIGTERM)
dev:
	@echo "building $(BIN) (the first build takes a minute; later ones a few seconds)…"
	@$(GO) build -o $(BIN) .
	@exec $(BIN) dev --port $(PORT) --data $(DATA) $(DEV_FLAGS)

## watch: make dev, rebuilt and restarted whenever Go files or the schema change (dev --watch)
watch: DEV_FLAGS += --watch
watch: dev

# node, when installed: the npm packages are then installed before anything needs them.
NODE := $(shell command -v node 2>/dev/null)
NPM_PACKAGES := $(if $(NODE),node_modules)

## test: vet, formatting, generated code freshness, then every test with the race detector; ends
## with one line per skipped test saying why (internal/cmd/testsummary keeps go test's exit status)
test: check
	@$(if $(NODE),,echo "note: node is not installed: the tests that need Node, dynalite or Chromium skip (install Node 20; make test then installs the npm packages)")
	@mkdir -p bin && $(GO) build -o bin/testsummary ./internal/cmd/testsummary
	GO=$(GO) bin/testsummary -race -count=1 -timeout 20m ./...

## check: static checks that need no services, generated code freshness among them
check: $(NPM_PACKAGES)
	@unformatted=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$unformatted" ]; then echo "gofmt needed: $$unformatted"; exit 1; fi
	$(GO) vet ./...
	@# Generated code is what go generate makes of the sources on disk (run in a copy, with the npm
	@# packages; see internal/cmd/fresh). The working tree is not written.
	$(GO) run ./internal/cmd/fresh

## generate: regenerate gqlgen code and the browser pages (web/dist; skipped without node)
generate: $(NPM_PACKAGES)
	$(GO) generate ./...

## build: cross-compile bootstrap for Lambda (linux/arm64) and zip it
build:
	mkdir -p dist
	CGO_ENABLED=0 GOOS=linux GOARCH=arm64 $(GO) build -tags lambda.norpc -trimpath -ldflags='-s -w' -o dist/bootstrap .
	cd dist && rm -f bootstrap.zip && zip -q -9 bootstrap.zip bootstrap
	@ls -l dist/bootstrap dist/bootstrap.zip

## bench: benchmarks, repeated so ratios can be compared on a noisy machine: every package's
## 5 times, then the whole delivery path (handler, store, TLS posts, beside post-only loops; the
## real bootstrap under the runtime interface emulator at 1k and 10k) twice,
## then one change to 100,000 subscribers delivered by one invocation and through the chunk queue
## by 1, 4 and 10 consumers, once, then the local runtime at line rate (1,000 subscribers, beside
## a raw push server) 3 times, then the peers' fan-out (aws-lambda-graphql and
## graphql-lambda-subscriptions in Node, beside ours) twice (about 35 minutes in all on 2 cores)
bench:
	$(GO) test -run '^$$' -bench . -skip 'BenchmarkFanoutPath|BenchmarkChunkedFanout|BenchmarkLocalLineRate|BenchmarkPeerFanout' -benchmem -count 5 -timeout 30m ./...
	$(GO) test -run '^$$' -bench BenchmarkFanoutPath -skip 'BenchmarkFanoutPath/^subs=100000$$/.*/^bootstrap-' -benchtime 1x -count 2 -timeout 30m ./internal/app/
	$(GO) test -run '^$$' -bench BenchmarkChunkedFanout -benchtime 1x -count 1 -timeout 30m ./e2e/faults/
	$(GO) test -run '^$$' -bench BenchmarkLocalLineRate -benchtime 1x -count 3 -timeout 30m ./internal/app/
	$(GO) test -run '^$$' -bench BenchmarkPeerFanout -benchtime 1x -count 2 -timeout 60m ./internal/app/

## node_modules: install the npm tooling, only when package-lock.json is newer than node_modules
node_modules: package-lock.json
	npm ci --no-audit --no-fund
	@touch node_modules

## deploy: deploy the stack with the Serverless Framework (needs AWS credentials)
deploy: build node_modules
	npx serverless deploy --stage prod

## package: write the CloudFormation template to .serverless/ without deploying
package: build node_modules
	npx serverless package --stage prod

clean:
	rm -rf dist
