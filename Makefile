# The two commands of the quickstart: `make render` and `make test`. Everything else is a helper.
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
STAMP := $(VENV)/.installed
TEST_STAMP := $(VENV)/.installed-test
TORTOISE_STAMP := $(VENV)/.installed-tortoise
export DO_NOT_TRACK := 1
export PREFECT_SERVER_ANALYTICS_ENABLED := false

.PHONY: setup setup-test setup-tortoise setup-browser setup-containers render test test-containers lint bench fuzz clean

$(PY):
	python3.11 -m venv $(VENV) || python3 -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip

$(STAMP): pyproject.toml | $(PY)
	$(PIP) install --quiet -e .
	touch $@

$(TEST_STAMP): $(STAMP) pyproject.toml
	$(PIP) install --quiet -e '.[test]'
	touch $@

$(TORTOISE_STAMP): $(STAMP) requirements-tortoise.txt
	$(PIP) install --quiet -r requirements-tortoise.txt
	touch $@

# Debian's Chromium and its WebDriver for the browser test of the service page (Selenium drives it;
# installed when we are root with apt-get; elsewhere that test is skipped and says why).
setup-browser:
	@{ command -v chromium >/dev/null 2>&1 && command -v chromedriver >/dev/null 2>&1; } || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null) \
	      || echo "could not install chromium and chromium-driver: the browser test will be skipped"; \
	  else echo "chromium/chromium-driver not installed (needs root and apt-get): the browser test will be skipped"; fi; }

# podman, buildah and podman-compose for the image tests (tests/test_containers.py), set up as
# docs/containers.md says: runc with cgroupfs, vfs storage (no overlay mounts in a sandbox).
setup-containers:
	@{ command -v podman && command -v buildah && command -v mmdebstrap; } >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq podman buildah runc mmdebstrap >/dev/null) \
	      || echo "could not install podman: the container tests will be skipped"; \
	  else echo "podman/buildah not installed (needs root and apt-get): the container tests will be skipped"; fi; }
	@if [ "$$(id -u)" = 0 ] && [ ! -f /etc/containers/storage.conf ]; then mkdir -p /etc/containers; \
	  printf '[containers]\ndefault_ulimits = []\n[engine]\ncgroup_manager = "cgroupfs"\nruntime = "runc"\n' > /etc/containers/containers.conf; \
	  printf '[storage]\ndriver = "vfs"\nrunroot = "/run/containers/storage"\ngraphroot = "/var/lib/containers/storage"\n' > /etc/containers/storage.conf; fi

setup: $(STAMP)            ## the CPU pipeline (Prefect, ffmpeg, Piper and its voice); no torch
setup-test: $(TEST_STAMP)
setup-tortoise: $(TORTOISE_STAMP)  ## torch + torchaudio + tortoise-tts (about 7 GB)

render: setup              ## set up if needed, then render the quickstart book with the CPU voice
	$(VENV)/bin/audiobook render manifests/quickstart.yaml

lint: setup-test
	$(VENV)/bin/ruff check cli flows service tasks tests benchmarks
	$(VENV)/bin/mypy

test: setup-test setup-tortoise setup-browser lint  ## set up if needed, then run the whole suite
	$(VENV)/bin/pytest -q

fuzz: setup-test          ## the property tests with new random examples (repeat: FUZZ_RUNS=5)
	for i in $$(seq $${FUZZ_RUNS:-1}); do HYPOTHESIS_PROFILE=fuzz $(VENV)/bin/pytest -q -m "not gpu" \
	  tests/test_text.py tests/test_text_spoken.py tests/test_documents*.py tests/test_audio.py tests/test_bad_input.py || exit 1; done

test-containers: setup-test setup-containers  ## build the images and run them (podman; about 15 minutes)
	AUDIOBOOK_CONTAINER_TESTS=1 $(VENV)/bin/pytest -q tests/test_containers.py

bench: setup-test setup-tortoise   ## the benchmarks; figures go to output/bench/results.json
	$(PY) benchmarks/run_all.py

clean:
	rm -rf .cache output/*/ .prefect
