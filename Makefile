# Every target creates .venv (Python 3.11) when it is missing or older than the lock.
PYTHON ?= python3.11
VENV := .venv
BIN := $(CURDIR)/$(VENV)/bin
STAMP := $(VENV)/.installed-from-lock

# Stage commands call `python`: make it the venv's, for dvc and everything it runs.
export PATH := $(BIN):$(PATH)
export MLFLOW_DISABLE_TELEMETRY := true
export DO_NOT_TRACK := true

.PHONY: setup repro study variant seeds test ui serve bench lock browser

setup: $(STAMP)

$(STAMP): requirements.lock pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -c requirements.lock -e '.[test]'
	@touch $@

# Every method section checked up front: each stage validates only the sections it reads.
repro: setup
	fgi check-params
	dvc repro

# The CPU study (docs/results.md: "The CPU study"): the study profile
# through `dvc repro`, timed, then Ours's literal reading as a DVC experiment;
# both recorded in docs/study/. It replaces params.yaml with the study profile:
# `git checkout params.yaml && dvc checkout` returns to the demo.
study: setup
	cp configs/study.yaml params.yaml
	fgi check-params
	start=$$(date +%s) && dvc repro && fgi study record --wall-s $$(( $$(date +%s) - start ))
	dvc exp run -S models.ours.base_loss=none
	fgi study record --ablation

# The study profile again with some params changed, as a DVC experiment after `make study`,
# recorded in docs/study/variants/NAME/ and set against the study run in docs/study/variants.md:
#   make variant NAME=train-mix-0.1 SET="holes.train_mix=0.1"
#   make variant NAME=seed-1 SET="train.seed=1"
variant: setup
	@test -n "$(NAME)" -a -n "$(SET)" || { echo 'make variant needs NAME=<name> SET="<key>=<value> ..."'; exit 2; }
	cp configs/study.yaml params.yaml
	start=$$(date +%s) && dvc exp run $(foreach setting,$(SET),-S $(setting)) \
	  && fgi study record --variant $(NAME) --wall-s $$(( $$(date +%s) - start ))

# More training seeds of the current params (the workspace's run is train.seed 0):
# each a queued DVC experiment, run one after the other, then mean ± sd across seeds.
SEEDS ?= 1 2
seeds: setup
	for seed in $(SEEDS); do dvc exp run --queue -S train.seed=$$seed -n seed-$$seed || exit 2; done
	dvc exp run --run-all --jobs 1
	fgi seeds

test: setup browser
	python -m pytest

# The report's browser test needs Debian's chromium; without root or a
# registry it cannot be installed and that one test is skipped, saying why.
browser:
	@command -v chromium >/dev/null 2>&1 || { \
	  echo "installing Debian's chromium for the report's browser test"; \
	  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; } >/dev/null 2>&1 \
	  || echo "chromium could not be installed: the browser test will be skipped"; }

ui: setup
	fgi ui

# Paint a hole on your own photo and compare every trained method (after `make repro`).
serve: setup
	fgi serve

bench: setup
	python -m benchmarks

# Refresh the exact versions after changing dependencies in pyproject.toml.
lock: setup
	{ echo "# Exact versions that the Makefile installs (pip constraints file). Refresh: make lock"; \
	  python -m pip freeze --exclude-editable | grep -v '^fgi'; } > requirements.lock.new
	mv requirements.lock.new requirements.lock
