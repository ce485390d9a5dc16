# make serve: run the service on 127.0.0.1:8000 (creates the virtual environment on first use)
# make cluster: the production shape on this machine: an autoscaling multi-node Ray cluster running serve_config.yaml
# make test:  lint (ruff, ruff format, mypy) + the whole test suite
# make test-fast: lint-free quick check: everything but the end-to-end tests (about 2 minutes)
# make model: replay the shipped checkpoint's recipe (about an hour on 2 CPU cores) -> var/recipe/model
# make bench: the benchmark suite (about 20 minutes; not part of make test) -> var/bench/latest.json
SHELL := /bin/bash
VENV = $(shell scripts/venv.sh)
PYTHON = $(VENV)/bin/python
export PYTHONPATH := $(CURDIR)

.PHONY: serve cluster test test-fast lint venv train model evaluate bench clean

venv:
	@scripts/venv.sh

serve:
	$(PYTHON) -m deployments.local

cluster:
	$(PYTHON) -m deployments.cluster

test: lint
	@scripts/chromium.sh
	$(PYTHON) -m pytest -q --timeout=900 tests

test-fast:
	$(PYTHON) -m pytest -q -m "not slow" tests

lint:
	$(VENV)/bin/ruff check deployments pipelines storage training lithoseg_client tests bench scripts
	$(VENV)/bin/ruff format --check deployments pipelines storage training lithoseg_client tests bench scripts
	$(VENV)/bin/mypy

# The shipped checkpoint's recipe (training/recipe.py; about an hour on 2 cores, resumable) -> var/recipe/model
model:
	$(PYTHON) -m training.recipe --data ../shared/data/real_cores --out var/recipe

# One training run of your own from ImageNet on the labelled photos (every option: python -m training.train --help).
train:
	$(PYTHON) -m training.train --out var/runs/default --data ../shared/data/real_cores \
		--holdout cc05,cc26,dji0045,dji0049,dji0059 --steps 2400 --batch-size 8 --crop 256 --val-every 300

# The shipped model on the synthetic test set; its real-photo figures are its recipe's folds (docs/crossval.md),
# as recorded (a fold's run: python -m training.crossval run ..., about an hour each)
evaluate:
	$(PYTHON) -m training.evaluate --model models/lithoseg-default --synthetic 60 --json var/eval/synthetic.json
	$(PYTHON) -m training.crossval report --out var/cv/r4 --recorded docs/crossval-r4.json --markdown

bench:
	$(PYTHON) -m bench.run

clean:
	rm -rf var/store var/runs .pytest_cache
