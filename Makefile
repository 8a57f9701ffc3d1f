# One entry point: `make demo` sets everything up and runs the demo; `make test` runs every check.
VENV ?= .venv
PYTHON ?= python3
PY := $(VENV)/bin/python
EMULATOR_PORT ?= 8765

.PHONY: setup sshd demo test lint docs clean ansible-sanity ansible-units ansible-lint bench

setup: $(VENV)/.installed sshd

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[all]'
	touch $@

# Emulated instances are real sshd processes on loopback: install OpenSSH when it is missing and we can.
sshd:
	@if [ -x /usr/sbin/sshd ] && command -v ssh >/dev/null; then exit 0; fi; \
	if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq openssh-server openssh-client >/dev/null; \
	elif command -v sudo >/dev/null && command -v apt-get >/dev/null; then \
		sudo apt-get update -qq && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq openssh-server openssh-client >/dev/null; \
	else \
		echo "openssh-server is missing: install it (e.g. apt-get install openssh-server) so emulated hosts can run sshd" >&2; exit 1; \
	fi

# Start the emulator as its own process, point the CLI at it through the env file it writes (this run's random
# credentials, mode 0600), run the demo, stop it. Emulated hosts log in as an unprivileged account when run as root,
# so the directory their reports go to is one that account can write (and not list).
demo: setup
	@set -e; tmp=$$(mktemp -d); chmod 711 $$tmp; mkdir -m 1733 $$tmp/reports; \
	$(VENV)/bin/gpucloud emulator --port $(EMULATOR_PORT) --env-file $$tmp/env & pid=$$!; \
	trap 'kill $$pid 2>/dev/null; wait $$pid 2>/dev/null; rm -rf $$tmp' EXIT INT TERM; \
	$(PY) -m gpucloud.emulator.client wait http://127.0.0.1:$(EMULATOR_PORT) --timeout 30; \
	set -a; . $$tmp/env; set +a; \
	$(VENV)/bin/gpucloud demo --url http://127.0.0.1:$(EMULATOR_PORT); \
	cd examples/ansible && export PATH=$(abspath $(VENV))/bin:$$PATH ANSIBLE_COLLECTIONS_PATH=$(CURDIR) \
		ANSIBLE_HOST_KEY_CHECKING=False ANSIBLE_SSH_USETTY=False ANSIBLE_PYTHON_INTERPRETER=$(abspath $(PY)) \
		ANSIBLE_SSH_ARGS='-o UserKnownHostsFile=/dev/null' && \
	ansible-playbook -i inventory.gpucloud.yml provision.yml -e fleet_report_dir=$$tmp/reports && \
	ansible-inventory -i inventory.gpucloud.yml --graph && \
	ansible-playbook -i inventory.gpucloud.yml teardown.yml

lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check shared/gpucloud tests pulumi_gpucloud
	$(VENV)/bin/mypy --strict shared/gpucloud pulumi_gpucloud benchmarks

# Docs build in strict mode: a broken link or nav entry fails.
docs: setup
	$(VENV)/bin/mkdocs build --strict --quiet --site-dir $$(mktemp -d)

# The Ansible collection's own checks; ansible-test runs from the collection root. Its --venv bootstrap fetches a
# get-pip script from a host that may be unreachable: ansible_test_offline.py puts a stand-in in its cache first.
COLLECTION := ansible_collections/gpucloud/cloud
ANSIBLE_PATH = PATH=$(abspath $(VENV))/bin:$$PATH
PY_VERSION = $$($(abspath $(PY)) -c 'import sys; print("%d.%d" % sys.version_info[:2])')

ansible-sanity: setup
	$(PY) tests/ansible/ansible_test_offline.py
	cd $(COLLECTION) && $(ANSIBLE_PATH) ansible-test sanity --venv --python $(PY_VERSION)

ansible-units: setup
	cd $(COLLECTION) && $(ANSIBLE_PATH) ansible-test units --python $(PY_VERSION)

ansible-lint: setup
	$(ANSIBLE_PATH) ANSIBLE_COLLECTIONS_PATH=$(CURDIR) ansible-lint --offline examples/ansible

test: lint docs ansible-sanity ansible-units ansible-lint
	$(PY) -m pytest -n 2

# Full-size benchmarks (about 10 minutes): ratios against same-run baselines, see benchmarks/README.md.
# `make test` runs a smoke-sized pass of the same code (tests/test_benchmarks.py).
bench: setup
	$(PY) -m benchmarks

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
