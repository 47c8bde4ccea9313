# Two set-up commands for a fresh machine:
#   make demo   create .venv, install, run the one-zone collapse to 1e22 cm^-3 with the reference (Saha
#               table above 1e18, built into ~/.cache/thermoemu on first use) and with the shipped
#               emulator against the reference at dt = 0.1, 0.01 and 0.001 t_ff (OS25 Fig. 7; eq. 8,
#               plain and tangent updates), write
#               results/collapse.{nc,png} and results/collapse-emulator/; then a silicon-burning step
#               with the shipped mesa80 NNNs (results/burn-nnn.nc, results/nuclear_step.{nc,png}); then
#               `thermoemu apply` of the emulator to a built-in 32^3 snapshot in Grackle's conventions
#               (results/snapshot-stepped.nc, results/snapshot_slice.png)
#   make test   create .venv, install with test extras, run the test suite
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip
# torch is pinned: on machines without a GPU, torch==2.13.0 resolves to the local CPU wheel
# (an unpinned torch would pull gigabytes of CUDA packages). Install it before the package so
# that the package's own "torch>=2.2" requirement is already satisfied.
TORCH  ?= torch==2.13.0

.PHONY: demo test install venv clean bench

$(VENV)/bin/python:
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip

$(VENV)/.installed: pyproject.toml | $(VENV)/bin/python
	$(PIP) install --quiet "$(TORCH)"
	$(PIP) install --quiet -e ".[test]"
	@touch $@

install: $(VENV)/.installed

demo: install
	mkdir -p results
	$(VENV)/bin/thermoemu collapse --reference -o results/collapse.nc --plot results/collapse.png
	$(VENV)/bin/thermoemu collapse --emulator default --compare 0.1,0.01,0.001 \
		-o results/collapse-emulator
	$(VENV)/bin/thermoemu burn --emulator default --temperature 5e9 --density 1e8 --dt 0.1 \
		--composition si28=0.5,s32=0.25,ar36=0.1,ca40=0.1,fe54=0.05 --out-of-domain flag -o results/burn-nnn.nc
	$(PY) examples/nuclear_step.py results
	$(PY) examples/apply_snapshot.py results
	@echo "wrote results/collapse.nc, results/collapse.png, results/collapse-emulator/ (collapse_emulator.png),"
	@echo "      results/burn-nnn.nc, results/nuclear_step.png, results/snapshot-stepped.nc and snapshot_slice.png"

test: install
	$(PY) -m pytest -q -ra

bench: install
	$(PY) benchmarks/bench_solver.py
	$(PY) benchmarks/bench_emulator.py
	$(PY) benchmarks/bench_saha.py
	$(PY) benchmarks/bench_nnn.py
	$(PY) benchmarks/bench_apply.py

clean:
	rm -rf $(VENV) results .pytest_cache
