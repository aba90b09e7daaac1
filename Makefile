# LlmChat developer entry points. Recipes stay thin; the logic lives in scripts/.
# Settings are environment variables (see scripts/dev.sh), e.g.
#   make dev DYNAMODB_PORT=8001 LLMCHAT_PORT=9001

.DEFAULT_GOAL := help
# `make api-key` promises the key on the last line of stdout. Run it from the
# repo root, or add -s to `make -C DIR`: with -C, make itself prints
# "Leaving directory" after the recipe, and a Makefile cannot switch that off.

SCRIPTS := $(patsubst %/,%,$(dir $(abspath $(lastword $(MAKEFILE_LIST)))))/scripts

.PHONY: help dev test soak contract-test client-tests browser-tests api-key revoke-key quota openapi deploy-check figures figures-durable e2e-real bench

help: ## Show this help
	@echo 'Usage: make <target> [VAR=value ...]'
	@awk 'BEGIN { FS = ":.*## " } /^[a-z0-9-]+:.*## / { printf "  %-16s %s\n", $$1, $$2 }' $(MAKEFILE_LIST)

dev: ## Run the local stack (DynamoDB Local + the local runtime) in the foreground
	@exec "$(SCRIPTS)/dev.sh" up

test: ## Run all tests against a private DynamoDB Local (extra cargo args: TEST_ARGS='...')
	@exec "$(SCRIPTS)/test.sh"

soak: ## Fault-injection soak on the local stack, then an audit (SOAK_SENDS=1000; 10000 for the long run)
	@exec "$(SCRIPTS)/soak.sh"

contract-test: ## Only the contract test: schemathesis, openapi.yaml vs the local stack
	@exec "$(SCRIPTS)/contract-test.sh"

client-tests: ## Only the client tests: the OpenAI SDK on /v1, clients generated from openapi.yaml
	@exec "$(SCRIPTS)/client-tests.sh"

browser-tests: ## Only the browser tests: the chat page (/chat) and CORS in headless Chromium
	@exec "$(SCRIPTS)/browser-tests.sh"

# OWNER and KEY_ID reach the scripts through the environment (make exports
# command-line variables), so no quoting of their values happens here.
api-key: ## Issue an API key on the running dev stack: make api-key OWNER=name
	@exec "$(SCRIPTS)/dev.sh" api-key "$${OWNER:-}"

revoke-key: ## Revoke an API key on the running dev stack: make revoke-key KEY_ID=id
	@exec "$(SCRIPTS)/dev.sh" revoke-key "$${KEY_ID:-}"

quota: ## Set an owner's own quotas on the dev stack: make quota OWNER=name [ACTIVE=n RPM=n TOKENS_DAY=n TOKENS_MONTH=n | CLEAR=1]
	@exec "$(SCRIPTS)/dev.sh" quota "$${OWNER:-}"

openapi: ## Regenerate openapi.yaml (3.1) and openapi-3.2.yaml from the code (a test fails when they are stale)
	@cargo run -q -p llmchat-admin -- openapi > openapi.yaml
	@cargo run -q -p llmchat-admin -- openapi-3.2 > openapi-3.2.yaml
	@echo "wrote openapi.yaml and openapi-3.2.yaml"

deploy-check: ## Lint template.yaml (cfn-lint, sam validate) and build every function for arm64 Lambda
	@"$(SCRIPTS)/deploy-check.sh"

figures: ## Print bootstrap sizes and local cold-start figures (see docs/FIGURES.md)
	@"$(SCRIPTS)/figures.sh"

figures-durable: ## Measure the follower's lag and a reply's writes; updates docs/FIGURES.md
	@"$(SCRIPTS)/figures-durable.sh" --write

bench: ## Benchmark vs the LLM straight and LiteLLM's proxy: prints tables, writes docs/bench/ (BENCH_SHORT=1: the short form)
	@"$(SCRIPTS)/bench.sh"

e2e-real: ## Full local stack against real model servers, BACKEND=ollama|openai|both (default), with overhead figures
	@"$(SCRIPTS)/e2e-real.sh"
