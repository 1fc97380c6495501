# Herald: the two commands a fresh machine needs are `make demo` and `make test`.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV := .venv
export HERALD_CACHE ?= $(HOME)/.cache/herald
# CLUSTER=local (default) starts the repo's own cluster; CLUSTER=existing uses $$KUBECONFIG.
CLUSTER ?= local
export HERALD_CLUSTER := $(CLUSTER)
# NODE=real adds a real node (containerd + kubelet) to the local cluster, next to the kwok
# nodes; the tests that need it (tests/e2e/test_real_node.py) see HERALD_NODE=real.
NODE ?=
export NODE
ifeq ($(NODE),real)
export HERALD_NODE := real
endif
TOOLS_BIN = $(shell tests/cluster/build-tools.sh paths)
PYTEST_ARGS ?=

.PHONY: help venv debs tools cluster-up cluster-down kind-up run test test-fast test-unit lint demo demo-stop demo-kwok bench clean images docs-test

help:
	@echo "make demo         Herald end to end on the local cluster's real node (Helm install, a real Job, a local Mastodon)"
	@echo "make demo-stop    stop the demo's fake Mastodon (make demo leaves it running; Herald stays installed)"
	@echo "make demo-kwok    the same story on the kwok nodes only (no containers; the operator on the host)"
	@echo "make test         the whole test suite (installs what it needs)"
	@echo "make test-fast    the tests that need no cluster (under a minute)"
	@echo "make docs-test    run the shell blocks of README.md and docs/*.md against a Helm install (tests/docs)"
	@echo "make lint         ruff, mypy and the import contracts"
	@echo "make cluster-up   start (or reuse) the local cluster; kubeconfig in .cluster/kubeconfig"
	@echo "make cluster-down stop the local cluster and remove its state"
	@echo "make cluster-up NODE=real   ... plus a real node (containerd, kubelet): docs/real-node.md"
	@echo "make images       build herald-operator:dev and herald-adapter:dev (buildah; loads them into the real node)"
	@echo "make run          run the operator in the foreground against the cluster"
	@echo "make bench        the benchmarks in bench/"

$(VENV)/.stamp: pyproject.toml
	test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install -q --upgrade pip
	$(VENV)/bin/pip install -q -e '.[test]'
	touch $@

venv: $(VENV)/.stamp

debs:
	tests/tools/install-debs.sh

tools:
	tests/cluster/build-tools.sh all >/dev/null

cluster-up: debs tools
ifeq ($(CLUSTER),existing)
	@echo "CLUSTER=existing: using KUBECONFIG=$${KUBECONFIG:?set KUBECONFIG}"
else
	tests/cluster/cluster.sh up
endif

# The demo's fake Mastodon runs on the host, its PID in .cluster/: stopped before .cluster/ goes.
cluster-down: demo-stop
	tests/cluster/cluster.sh down

images:
	images/build.sh load

kind-up:
	kind create cluster --name herald --kubeconfig .cluster/kubeconfig

run: venv cluster-up
	PATH="$(TOOLS_BIN):$$PATH" KUBECONFIG=$${KUBECONFIG:-$(CURDIR)/.cluster/kubeconfig} \
	  sh -c 'kubectl apply --server-side -f crds/ && exec $(VENV)/bin/python -m herald'

test-unit: venv
	$(VENV)/bin/pytest tests/unit $(PYTEST_ARGS)

# Everything that needs no cluster: unit, property, adapter, alert and monitoring-file tests,
# one worker per core (pytest-xdist).
test-fast: venv
	$(VENV)/bin/pytest -m "not cluster" -q -n auto $(PYTEST_ARGS)

# ruff (lint and format), mypy, and the import contracts (pyproject.toml [tool.importlinter]).
lint: venv
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy
	PYTHONPATH=operator:adapters $(VENV)/bin/lint-imports

test: venv cluster-up
	PATH="$(TOOLS_BIN):$$PATH" $(VENV)/bin/pytest $(PYTEST_ARGS)

# The docs' shell blocks against one Helm install on the real node, and the demo script (also part of make test).
docs-test: venv cluster-up
	PATH="$(TOOLS_BIN):$$PATH" $(VENV)/bin/pytest tests/docs $(PYTEST_ARGS)

# make demo: the real path. 1. the cluster with the real node, 2. the images, 3.-4. Helm
# install, examples/demo-real/ and what the fake Mastodon on this host received. The fake
# Mastodon and Herald keep running; running it again keeps what was created.
demo: venv
	$(MAKE) --no-print-directory cluster-up NODE=real
	$(MAKE) --no-print-directory images
	PATH="$(TOOLS_BIN):$$PATH" examples/demo-real.sh

demo-stop:
	examples/demo-real.sh stop

demo-kwok: venv cluster-up
	PATH="$(TOOLS_BIN):$$PATH" examples/demo.sh

bench: venv cluster-up
	PATH="$(TOOLS_BIN):$$PATH" $(VENV)/bin/python bench/publications.py
	PATH="$(TOOLS_BIN):$$PATH" $(VENV)/bin/python bench/scale.py

clean: cluster-down
	rm -rf $(VENV)

# helm/herald/README.md from the `# --` comments of helm/herald/values.yaml and README.md.gotmpl, with the
# pinned helm-docs (tests/cluster/helm-docs); tests/helm/test_readme.py fails when the README is stale.
.PHONY: chart-docs
chart-docs:
	tests/cluster/build-tools.sh helm-docs >/dev/null
	"$(TOOLS_BIN)/helm-docs" --chart-search-root helm/herald
