# make demo: install what is needed (as root: the Debian packages too) and run the demo
# make test: the same setup, then the linter (ruff, configured in pyproject.toml) and the whole test suite
# make bench: the same setup, then the benchmarks
VENV := .venv
SETUP_INPUTS := pyproject.toml setup.py ci/setup.sh $(wildcard csrc/*.c csrc/*.h csrc/*.py pmi/*.c pmi/*.h)

.PHONY: setup demo test bench clean

setup: $(VENV)/.installed

$(VENV)/.installed: $(SETUP_INPUTS)
	bash ci/setup.sh
	touch $@

demo: setup
	bash ci/demo.sh

test: setup
	$(VENV)/bin/ruff check src tests bench
	$(VENV)/bin/python -m pytest -q tests

bench: setup
	$(VENV)/bin/python bench/run.py

clean:
	rm -rf $(VENV) build src/*.egg-info src/flux_launch/_accel/_c*.so
