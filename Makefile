# chaosmesh-sec developer targets. Everything runs from .venv (make venv first).
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin

.PHONY: venv lint typecheck contracts unit reference constraints

venv: $(VENV)/.installed ## create .venv and install the package with its dev extra (editable), pinned by constraints.txt

constraints: ## refresh constraints.txt: .[dev] installed in a fresh venv, frozen (the package itself left out)
	rm -rf .venv-constraints
	$(PYTHON) -m venv .venv-constraints
	.venv-constraints/bin/pip install --quiet --upgrade pip
	.venv-constraints/bin/pip install --quiet -e '.[dev,lab]'
	{ echo "# Pins for make venv: refreshed by make constraints (pip freeze of a fresh .[dev,lab])."; \
	  .venv-constraints/bin/pip freeze --exclude-editable | grep -iv '^chaosmesh[-_]sec'; } > constraints.txt
	rm -rf .venv-constraints

lint: $(VENV)/.installed ## ruff lint + format check
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(VENV)/.installed ## mypy --strict on the package
	$(BIN)/mypy --strict chaosmesh_sec

contracts: $(VENV)/.installed ## the import contracts: which part may import which (docs/architecture.md)
	$(BIN)/lint-imports

unit: $(VENV)/.installed ## unit tests: no cluster, no root
	$(BIN)/pytest -m unit

reference: $(VENV)/.installed ## regenerate docs/activities.md from the code
	$(BIN)/chaosmesh-sec reference > docs/activities.md

# ============================================================================
# Lab, tests and the main job. The lab needs root (network namespaces, iptables).
# ----------------------------------------------------------------------------
.PHONY: test lab-build lab-up lab-down smoke flagship integration gameday reference-journals

$(VENV)/.installed: pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -c constraints.txt -e '.[dev,lab]'
	touch $@

lab-build: $(VENV)/.installed ## build the lab's binaries (cached outside the repo)
	$(BIN)/chaosmesh-sec lab build

lab-up: lab-build ## start the lab (prints the KUBECONFIG to use)
	$(BIN)/chaosmesh-sec lab up

lab-down: $(VENV)/.installed ## stop the lab and remove everything it created
	$(BIN)/chaosmesh-sec lab down

integration: lab-build ## integration + e2e tests against a lab they bring up and down
	$(BIN)/pytest -m "integration or e2e" -p no:cacheprovider

test: $(VENV)/.installed ## everything CI runs: lint, types, import contracts, then every tier
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy --strict chaosmesh_sec
	$(BIN)/lint-imports
	$(BIN)/chaosmesh-sec lab build
	$(BIN)/pytest -p no:cacheprovider

flagship: lab-up ## the main job: the flagship experiment against the lab, journal in journals/
	mkdir -p journals
	KUBECONFIG=$$($(BIN)/chaosmesh-sec lab status --kubeconfig) \
	  $(BIN)/chaos --no-version-check run --journal-path journals/wrong-identity.json \
	  experiments/wrong-identity.json

gameday: lab-up ## every experiment against the lab in one game day (gamedays/lab.yaml), results in journals/
	KUBECONFIG=$$($(BIN)/chaosmesh-sec lab status --kubeconfig) \
	  $(BIN)/chaosmesh-sec gameday --yes gamedays/lab.yaml

reference-journals: lab-up ## regenerate journals/reference/: a game day of every experiment in the lab
	rm -rf journals/.reference-run
	KUBECONFIG=$$($(BIN)/chaosmesh-sec lab status --kubeconfig) \
	  $(BIN)/chaosmesh-sec gameday --yes --quiet --out journals/.reference-run gamedays/lab.yaml
	mkdir -p journals/reference
	rm -f journals/reference/*.json
	for f in journals/.reference-run/*/[0-9][0-9]-*.json; do \
	  name=$${f##*/}; cp "$$f" "journals/reference/$${name#[0-9][0-9]-}"; \
	done
	cp journals/.reference-run/*/metrics.prom journals/reference/
	$(BIN)/chaosmesh-sec report journals/reference/*.json --out journals/reference \
	  --title "chaosmesh-sec reference game day (lab)"
	rm -rf journals/.reference-run

smoke: lab-up ## the smoke experiment (no fault) against the lab, journal in journals/
	mkdir -p journals
	KUBECONFIG=$$($(BIN)/chaosmesh-sec lab status --kubeconfig) \
	  $(BIN)/chaos --no-version-check run --journal-path journals/smoke.json experiments/smoke.json
