# Green Training Operator: developer entry points. `make help` lists them.
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

PYTHON_BOOT ?= python3.11
VENV        := .venv
PY          := $(VENV)/bin/python
STAMP       := $(VENV)/.setup-stamp
# The stamp depends on every file that pins Python dependencies, so edits re-run setup.
PIN_FILES   := operator/pyproject.toml trainer-image/pyproject.toml trainer-image/constraints.txt requirements-dev.txt
PYTEST_ARGS ?=

export GREEN_CACHE ?= $(HOME)/.cache/green-training
CONTROLPLANE_BIN = $(shell bash -c 'source hack/env.sh && controlplane_bin_dir')
KUBECONFIG_PATH  = $(shell bash -c 'source hack/env.sh && echo $$GREEN_KUBECONFIG')

.PHONY: crd crd-template config-schema podresources help setup controlplane kueue kueue-up kueue-down multicluster-up multicluster-down multicluster-status prometheus tools cluster-up cluster-down cluster-status lint fmt \
        verify test test-unit test-integration test-multicluster fuzz demo bench clean

help: ## List the targets
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z_-]+:.*## / {printf "  \033[36m%-18s\033[0m %s\n", $$1, $$2}' $(MAKEFILE_LIST)

setup: $(STAMP) ## Create .venv with both packages (editable) and the test tools

$(STAMP): $(PIN_FILES)
	@command -v $(PYTHON_BOOT) >/dev/null || { echo "setup: $(PYTHON_BOOT) not found; install Python 3.11" >&2; exit 1; }
	$(PYTHON_BOOT) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip==25.3
	$(PY) -m pip install --quiet -e "operator[tools]" -e "trainer-image[torch]" -r requirements-dev.txt \
	  -c trainer-image/constraints.txt
	touch $@

controlplane: ## Build etcd, Kubernetes, kwok and helm from pinned Go modules (cached outside the repo)
	hack/build-controlplane.sh

kueue: ## Build Kueue v0.17.0 and JobSet v0.11.1 from pinned Go modules (cached beside the control plane)
	hack/build-kueue.sh

prometheus: ## Install Prometheus from Debian's package when missing
	hack/install-prometheus.sh

tools: setup controlplane kueue prometheus ## Everything the tests need

cluster-up: setup controlplane ## Start the local control plane (KUEUE=1: with Kueue and JobSet); prints the kubeconfig path
	hack/cluster.sh up
	if [ "$${KUEUE:-0}" = 1 ]; then hack/kueue.sh up; fi

kueue-up: setup controlplane kueue ## Start Kueue and JobSet beside the running local control plane
	hack/kueue.sh up

kueue-down: ## Stop Kueue and JobSet (their webhooks are unregistered first)
	hack/kueue.sh down

multicluster-up: setup controlplane kueue ## Start a MultiKueue manager and two worker clusters (hack/multicluster.sh; stack.json describes them)
	hack/multicluster.sh up

multicluster-down: ## Stop every process of the multi-cluster stack (also after a failed start)
	hack/multicluster.sh down

multicluster-status: ## What runs in the multi-cluster stack, its memory and start time
	hack/multicluster.sh status

cluster-down: ## Stop the local control plane and remove its state
	hack/cluster.sh down

cluster-status: ## Which control-plane processes run
	hack/cluster.sh status

crd: setup ## Regenerate crds/ from hack/crd/greentrainingjobs.in.yaml (and copy it into the chart)
	cd hack/crd && ../../$(PY) gen_crd.py > ../../crds/greentraining.io_greentrainingjobs.yaml
	$(PY) hack/gen_config_schema.py --write
	$(PY) hack/verify.py --fix

# The kubelet's PodResources v1 proto, from the k8s.io/kubelet module matching the control plane's
# Kubernetes (hack/controlplane/kubernetes/go.mod), placed so the generated imports are package-absolute.
KUBELET_VERSION := v0.35.4
PODRESOURCES    := trainer-image/proto/green_trainer/node_agent/podresources_v1/api.proto
podresources: setup ## Fetch the kubelet's PodResources proto and regenerate the node agent's gRPC client
	cd hack/controlplane/kubernetes && go mod download k8s.io/kubelet@$(KUBELET_VERSION)
	install -m 0644 "$$(go env GOMODCACHE)/k8s.io/kubelet@$(KUBELET_VERSION)/pkg/apis/podresources/v1/api.proto" $(PODRESOURCES)
	rm -f trainer-image/src/green_trainer/node_agent/podresources_v1/api_pb2*
	cd trainer-image && ../$(PY) -m grpc_tools.protoc -I proto --python_out=src --pyi_out=src --grpc_python_out=src \
	  green_trainer/node_agent/podresources_v1/api.proto

config-schema: setup ## Regenerate the chart's values.schema.json `config` part from the configuration's pydantic models
	$(PY) hack/gen_config_schema.py --write

crd-template: setup cluster-up ## Refresh the PodTemplateSpec schema from the local kube-apiserver
	$(CONTROLPLANE_BIN)/kubectl --kubeconfig $(KUBECONFIG_PATH) get --raw /openapi/v3/api/v1 \
	  | $(PY) hack/crd/pod_template_schema.py > hack/crd/podtemplatespec-v1.35.4.json

lint: setup controlplane ## ruff (lint + format check), mypy --strict, helm lint, CRD/chart drift
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy operator/src trainer-image/src
	$(CONTROLPLANE_BIN)/helm lint --strict charts/green-training-operator
	$(PY) hack/verify.py

fmt: setup ## Apply ruff's fixes and formatting
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

test-unit: setup controlplane prometheus ## Fast tier: no servers (uses the pinned helm and promtool binaries)
	GREEN_BIN=$(CONTROLPLANE_BIN) $(VENV)/bin/pytest -m "not integration and not e2e" $(PYTEST_ARGS)

FUZZ_TESTS := tests/operator/carbon/test_fuzz.py tests/operator/api/test_spec_fuzz.py tests/operator/test_config.py \
              tests/trainer/test_report_fuzz.py tests/operator/controller/test_properties.py \
              tests/operator/kueue/test_inputs_fuzz.py

fuzz: setup ## Longer fuzzing run (Hypothesis profile `fuzz`: 2000 cases per fuzz test; the unit tier runs 50)
	HYPOTHESIS_PROFILE=fuzz $(VENV)/bin/pytest -m "not integration and not e2e" --timeout=0 --hypothesis-show-statistics \
	  $(FUZZ_TESTS) $(PYTEST_ARGS)

test-integration: tools ## Integration + e2e tiers against a fresh local control plane (always torn down)
	hack/cluster.sh down >/dev/null 2>&1 || true
	trap 'hack/cluster.sh down' EXIT; \
	  hack/cluster.sh up && \
	  KUBECONFIG=$(KUBECONFIG_PATH) GREEN_BIN=$(CONTROLPLANE_BIN) \
	    $(VENV)/bin/pytest -m "(integration or e2e) and not multicluster" $(PYTEST_ARGS)

# After test-integration, whose cluster is down by then: the stack's three control planes never run
# beside it. The tier's fixture starts the stack once and always stops it.
test-multicluster: tools ## Multi-cluster tier: a MultiKueue manager and two workers (hack/multicluster.sh)
	GREEN_BIN=$(CONTROLPLANE_BIN) $(VENV)/bin/pytest -m multicluster $(PYTEST_ARGS)

test: tools lint test-unit test-integration test-multicluster ## Everything: set-up, lint, unit, integration, e2e, multi-cluster

demo: tools ## Bring up the cluster, run the operator on real carbon traces, apply the examples
	hack/demo.sh

bench: tools ## Benchmarks (print figures)
	hack/bench.sh

clean: cluster-down ## Remove the virtualenv and caches inside the repo (not the Go build cache)
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache .hypothesis
