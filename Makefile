# revstream: every command a user or CI types. `make help` lists them.
# Each target installs what it needs first (virtualenv, package, Kafka jars, PostgreSQL server).

SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.DEFAULT_GOAL := help
.PHONY: help install services-prereqs up test test-unit lint clean

help: ## list the commands
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-16s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	@echo "revstream: creating $(VENV) and installing the package (first run takes a minute)..."
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@$(BIN)/python -m pip install --quiet --upgrade pip
	@$(BIN)/python -m pip install --quiet -e ".[dev]"
	@touch $(STAMP)

install: $(STAMP) ## create .venv and install revstream with its test tools

services-prereqs: install ## make sure Java, Maven and a PostgreSQL server exist; fetch the Kafka jars once
	@bash deploy/install-prereqs.sh
	@$(BIN)/python -c "from revstream.localservices.kafka import ensure_kafka_jars; ensure_kafka_jars()"

up: services-prereqs ## run the whole pipeline on the embedded default (needs STRIPE_WEBHOOK_SECRET)
	@$(BIN)/revstream up

test: services-prereqs ## run the whole test suite; it starts and stops Kafka and PostgreSQL itself
	@$(BIN)/python -m pytest; status=$$?; \
	  if [ $$status -eq 5 ]; then echo "revstream: pytest collected no tests: that is a failure"; exit 1; fi; \
	  exit $$status

test-unit: install ## only the fast tests (no services)
	@$(BIN)/python -m pytest -m "not integration"

lint: install ## ruff (lint + format check) and mypy
	@$(BIN)/ruff check . && $(BIN)/ruff format --check . && $(BIN)/mypy schemas ingest processors sinks revstream

clean: ## remove the virtualenv and local data (.revstream)
	rm -rf $(VENV) .revstream
