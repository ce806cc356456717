# Thin targets; CI runs `make test` through .ci/run.
SHELL := /bin/bash
GO ?= go
PORT ?= 4000
DATA ?= ./.data

.PHONY: dev test check generate build bench deploy package clean

## dev: run the local runtime on 127.0.0.1:$(PORT) with data in $(DATA)
dev:
	$(GO) run . dev --port $(PORT) --data $(DATA)

## test: vet, formatting, generated code freshness, then every test with the race detector
test: check
	$(GO) test -race -count=1 -timeout 20m ./...

## check: static checks that need no services
check:
	@unformatted=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$unformatted" ]; then echo "gofmt needed: $$unformatted"; exit 1; fi
	$(GO) vet ./...
	@$(MAKE) --no-print-directory generate
	@git diff --exit-code --stat -- graph/ web/dist/ || (echo "generated code is stale: run go generate ./... and commit"; exit 1)

## generate: regenerate gqlgen code and the browser pages (web/dist; skipped without node)
generate:
	$(GO) generate ./...

## build: cross-compile bootstrap for Lambda (linux/arm64) and zip it
build:
	mkdir -p dist
	CGO_ENABLED=0 GOOS=linux GOARCH=arm64 $(GO) build -tags lambda.norpc -trimpath -ldflags='-s -w' -o dist/bootstrap .
	cd dist && rm -f bootstrap.zip && zip -q -9 bootstrap.zip bootstrap
	@ls -l dist/bootstrap dist/bootstrap.zip

## bench: benchmarks, repeated so ratios can be compared on a noisy machine: every package's
## 5 times, then the whole delivery path (handler, store, TLS posts, beside post-only loops) twice
## (about 14 minutes in all on 2 cores)
bench:
	$(GO) test -run '^$$' -bench . -skip BenchmarkFanoutPath -benchmem -count 5 -timeout 30m ./...
	$(GO) test -run '^$$' -bench BenchmarkFanoutPath -benchtime 1x -count 2 -timeout 30m ./internal/app/

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
