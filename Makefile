# The README's commands. Every target builds the venv first when there is none.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
IAC_VENV := .venv-iac
PY := $(VENV)/bin/python
MODEL_DIR := model/artifacts
SAMPLE_MODEL := $(MODEL_DIR)/xgboost-model.json
# make up MODEL=path/to/model.tar.gz (or a directory) serves that package instead of the
# sample, and make deploy MODEL=... ships it; only the command line sets it.
MODEL :=

.PHONY: demo up test lint typecheck unit venv iac-venv model deploy destroy clean bench browser
.PHONY: bench-images fuzz docs docs-serve

venv: $(VENV)/.installed
$(VENV)/.installed: requirements.lock pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --no-deps -r requirements.lock
	# byom itself, editable, for the byom command (setuptools from the lock builds it).
	$(PY) -m pip install --quiet --no-deps --no-build-isolation --editable .
	touch $@

# checkov, hadolint and shellcheck live apart: checkov's pins clash with ours.
iac-venv: $(IAC_VENV)/.installed
$(IAC_VENV)/.installed: requirements-iac.lock infra/iac_venv.sh
	PYTHON=$(PYTHON) infra/iac_venv.sh
	touch $@

model: $(SAMPLE_MODEL)
$(SAMPLE_MODEL): $(VENV)/.installed model/train.py model/data.py
	$(PY) -m model.train --out $(MODEL_DIR)

demo: venv model
	$(PY) -m infra.local.demo --model-dir $(MODEL_DIR)

up: venv $(if $(MODEL),,model)
	$(PY) -m infra.local.up --model-dir $(or $(MODEL),$(MODEL_DIR))

# lint-imports checks the contracts in pyproject.toml: the layers, the four services
# apart, and no import cycle inside any package.
lint: venv
	$(PY) -m ruff check --no-cache .
	$(PY) -m ruff format --check --no-cache .
	$(VENV)/bin/lint-imports --no-cache

typecheck: venv
	$(PY) -m mypy .

# The checks and what the tests need, two at a time (the type check keeps one core
# busy while the scanners' venv mostly waits on downloads), then the tests.
test: venv browser
	$(MAKE) --no-print-directory -j2 --output-sync=target lint typecheck docs model iac-venv
	$(PY) -m pytest

# The documentation site (docs/, mkdocs.yml) into build/site; --strict fails on a broken
# link or anchor. make docs-serve previews it on 127.0.0.1:8000 as it is edited.
docs: venv
	$(PY) -m mkdocs build --strict --quiet

docs-serve: venv
	$(PY) -m mkdocs serve --dev-addr 127.0.0.1:8000

# The dashboard's browser test drives the system Chromium (never a downloaded one).
CHROMIUM := /usr/bin/chromium
# apt-get needs root: as another user, through sudo when there is one.
APT := $(if $(filter 0,$(shell id -u)),,$(shell command -v sudo)) apt-get
browser:
	@test -x $(CHROMIUM) || $(APT) install -y chromium chromium-driver \
		|| ($(APT) update && $(APT) install -y chromium chromium-driver)

# byom against its peers (see bench/); never part of make test. BENCH_RAY=1 installs Ray.
bench: venv model
	$(PY) -m bench

# Images per second through the pipeline against the bare model, on the GPU when
# onnxruntime has CUDA (else it says why it skipped); never part of make test.
bench-images: venv
	$(PY) -m bench.images $(ARGS)

deploy: venv $(if $(MODEL),,model)
	infra/deploy.sh $(if $(MODEL),--model $(MODEL)) $(ARGS)

destroy:
	infra/destroy.sh $(ARGS)

unit: venv
	$(PY) -m pytest tests/unit

# Every property test (hypothesis), and only those, on the long budget of
# tests/conftest.py's fuzz profile rather than make test's bounded one; never part of
# make test. ARGS narrows it: make fuzz ARGS=tests/unit/test_thrift.py
fuzz: venv
	BYOM_HYPOTHESIS_PROFILE=fuzz $(PY) -m pytest -q -p no:cacheprovider \
		-p tests.property_tests_only $(or $(ARGS),tests/unit)

# Everything the targets and the tests build: the venvs (the deployables' and the
# SageMaker SDK's too, tests/integration), the model, the docs site and the caches.
clean:
	rm -rf $(VENV) $(IAC_VENV) .venv-deployables .venv-sagemaker $(MODEL_DIR) build/site \
		.mypy_cache .pytest_cache .ruff_cache
