# Thin targets; CI runs `make test` through .ci/run.
SHELL := /bin/bash
GO ?= go
PORT ?= 4000
DATA ?= ./.data

.PHONY: dev test check generate build bench deploy package clean

## dev: run the local runtime on 127.0.0.1:$(PORT) with data in $(DATA); it prints its endpoints,
## the Lambda invoke endpoint (for EventBridge, SQS and SNS events, and bootstrap publish) among them
dev:
	$(GO) run . dev --port $(PORT) --data $(DATA)

## test: vet, formatting, generated code freshness, then every test with the race detector
test: check
	$(GO) test -race -count=1 -timeout 20m ./...

## check: static checks that need no services
check:
	@unformatted=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$unformatted" ]; then echo "gofmt needed: $$unformatted"; exit 1; fi
	$(GO) vet ./...
	@# Generated code is what go generate makes of the sources on disk (run in a copy; see internal/cmd/fresh).
	$(GO) run ./internal/cmd/fresh

## generate: regenerate gqlgen code and the browser pages (web/dist; skipped without node)
generate:
	$(GO) generate ./...

## build: cross-compile bootstrap for Lambda (linux/arm64) and zip it
build:
	mkdir -p dist
	CGO_ENABLED=0 GOOS=linux GOARCH=arm64 $(GO) build -tags lambda.norpc -trimpath -ldflags='-s -w' -o dist/bootstrap .
	cd dist && rm -f bootstrap.zip && zip -q -9 bootstrap.zip bootstrap
	@ls -l dist/bootstrap dist/bootstrap.zip

## bench: benchmarks, repeated so ratios can be compared on a noisy machine
bench:
	$(GO) test -run '^$$' -bench . -benchmem -count 5 ./...

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
