# pyvirt: `make demo` and `make test` do all set-up themselves on a fresh Debian 12 machine (as root).
VENV := .venv
PY := $(VENV)/bin/python
# QEMU runs as its own user and boots the test guest's kernel from GUEST_DIR: inside the checkout when
# every folder above it lets others in, else (a checkout under /root, say) a system cache folder.
ifeq ($(origin GUEST_DIR),undefined)
GUEST_DIR := $(shell if scripts/others-can-enter.sh "$(CURDIR)"; then echo "$(CURDIR)/.cache/test-guest"; \
	else echo /var/cache/pyvirt/test-guest; fi)
endif
export GUEST_DIR

.PHONY: setup guest man test unit integration lint demo bench stress fuzz clean install-systemd test-templates

setup:
	@bash scripts/setup.sh

# The man pages from the command table (setup makes them too).
man: setup
	$(PY) scripts/make-man.py $(VENV)/share/man

# systemd units (contrib/systemd) for this install's commands, into /etc/systemd/system.
install-systemd: setup
	$(PY) scripts/install-systemd.py --bindir $(CURDIR)/$(VENV)/bin

guest: setup
	@bash scripts/build-test-guest.sh "$(GUEST_DIR)"

lint: setup
	$(VENV)/bin/ruff check src tests bench
	$(VENV)/bin/ruff format --check src tests bench
	$(VENV)/bin/mypy

unit: setup
	$(PY) -m pytest tests/unit -q

test: setup guest lint
	@PY=$(PY) bash scripts/test.sh

# The long forms of the fault and load tests (tests/integration/faults; `make test` runs the short
# forms); their figures go to .cache/stress/*.json, see docs/RELIABILITY.md.
stress: setup guest
	PYVIRT_STRESS=long PYVIRT_STRESS_REPORT=$(CURDIR)/.cache/stress \
		$(PY) -m pytest tests/integration/faults -q -s -p no:cacheprovider -o timeout=7200

# Every Debian release `template build --os` offers (debian-11, -12, -13), built, launched and checked
# in its booted guest (tests/integration/template/test_debian_releases.py); `make test` builds and
# boots debian-12 only, and checks that every release's packages resolve from the archive. Long: a
# first debootstrap takes minutes per release, a Debian boot under TCG 5-10 more.
test-templates: setup
	PYVIRT_TEMPLATE_RELEASES=all $(PY) -m pytest tests/integration/template/test_debian_releases.py \
		-q -s -p no:cacheprovider -o timeout=7200

# 1,000,000 fuzzed inputs across the XML, image and HTTP parsers (tests/fuzz; `make test` runs a
# short form); crashes, hangs and report.json go to .cache/fuzz. FUZZ_INPUTS=N, FUZZ_SEED=N to vary.
FUZZ_INPUTS ?= 1000000
FUZZ_SEED ?= 0
fuzz: setup
	$(PY) -m tests.fuzz --inputs $(FUZZ_INPUTS) --seed $(FUZZ_SEED) --out $(CURDIR)/.cache/fuzz

demo: setup guest
	@bash scripts/demo.sh

bench: setup guest
	$(PY) bench/run.py

clean:
	rm -rf $(VENV) .cache build *.egg-info src/*.egg-info
