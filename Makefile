# Two commands set up and use everything: `make run` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
BENCH_STAMP := $(VENV)/.bench-installed
CORES ?= all
export HF_HUB_OFFLINE ?= 1
export TRANSFORMERS_OFFLINE ?= 1

.PHONY: install run test test-fast dryrun report lint bench gpu-check clean

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	# constraints.txt pins every version, torch 2.13.0 (CPU wheel) included: an unpinned torch
	# would pull several GB of CUDA packages.
	$(BIN)/pip install --quiet -c constraints.txt -e '.[test,export]'
	# laion-clap's metadata pins numpy<2 although its inference code runs on numpy 2, and msclap's
	# pins numpy<2, pandas<3, librosa<0.11, transformers<5 and pulls torchaudio (whose wheels pin
	# another torch; vlmsae imports only msclap's model classes, which need none of these): both
	# go in without their declared dependencies (the real ones are in pyproject.toml).
	$(BIN)/pip install --quiet --no-deps -c constraints.txt laion-clap==1.1.7 msclap==1.3.4
	touch $(STAMP)

install: $(STAMP)

run: $(STAMP)
	$(BIN)/snakemake --cores $(CORES)

dryrun: $(STAMP)
	$(BIN)/snakemake -n --cores $(CORES)

# The results of `make run` in one self-contained HTML file (every figure and table with its
# caption, report/): built and opened without a network.
report: $(STAMP)
	$(BIN)/snakemake --report results/report.html

# The whole suite on one pytest-xdist worker per core, each test module (or class) on one
# worker, the longest first (tests/conftest.py), then the 25 slowest tests. PYTEST_WORKERS=0
# runs it serially.
PYTEST_WORKERS ?= auto
PYTEST_PARALLEL := -n $(PYTEST_WORKERS) --dist loadscope --no-loadscope-reorder
test: $(STAMP)
	$(BIN)/python -m pytest -q $(PYTEST_PARALLEL) --durations=25

# The edit loop: unit tests only (no workflow run, no browser, no cluster), a few minutes.
test-fast: $(STAMP)
	$(BIN)/python -m pytest -q $(PYTEST_PARALLEL) -m "not slow and not browser and not cluster"

# ruff; snakefmt (its defaults) on the Snakefile and rules; snakemake --lint, which parses the
# workflow and runs nothing, on the default config and on every preset (their data ship in data/,
# or are synthetic, or are made by rule fixtures). Any finding fails the target.
lint: $(STAMP)
	$(BIN)/ruff check vlmsae tests workflow_scripts scripts bench
	$(BIN)/snakefmt --check Snakefile rules
	$(BIN)/snakemake --lint
	set -e; for preset in presets/*.yaml; do \
		echo "snakemake --lint --configfile $$preset"; \
		$(BIN)/snakemake --lint --configfile $$preset; \
	done

# Training throughput against overcomplete 0.3.0 (CPU, fp32): results/bench/train_throughput.json;
# the full metric suite at p = 8192, 100k pairs, d = 768: results/bench/metrics_scale.json;
# the embedding stage's time outside the model forward (and GPU images/s when CUDA is
# visible): results/bench/embed_overhead.json; the share of the embed and train jobs' time spent
# checksumming and verifying (vlmsae.stores.manifest): results/bench/checksum.json; the explorer:
# results/bench/explorer.json; the interventions at 100k pairs, p = 8192:
# results/bench/interventions.json; the tiny config through the local SLURM cluster
# (scripts/local-slurm.sh start) against --cores 2, overhead per job: results/bench/slurm.json
# (the reason, without a cluster); a start (`vlmsae runs`, `vlmsae schema`, the Snakefile's
# parse), cold and with the config cache: results/bench/start_time.json; with ISOENERGY=<a
# checkout of the iso-energy authors' repository>, their trainer against ours on the §4 synthetic data (README, "generator or
# trainer"): results/bench/iso_energy_authors.json (without it, a line says it was skipped).
# Last, bench/summary.py prints every figure of results/bench/*.json against its target on one
# screen, and the files not written (not run).
# The benchmark's extra packages go into the same .venv under constraints.txt, so no pinned
# version changes.
$(BENCH_STAMP): $(STAMP) bench/requirements.txt
	$(BIN)/pip install --quiet -c constraints.txt -r bench/requirements.txt
	touch $(BENCH_STAMP)

bench: $(BENCH_STAMP)
	$(BIN)/python bench/train_throughput.py --out results/bench/train_throughput.json
	$(BIN)/python bench/metrics_scale.py --out results/bench/metrics_scale.json
	$(BIN)/python bench/embed_overhead.py --out results/bench/embed_overhead.json
	$(BIN)/python bench/explorer_bench.py --out results/bench/explorer.json
	$(BIN)/python bench/checksum_overhead.py --out results/bench/checksum.json
	$(BIN)/python bench/interventions_bench.py --out results/bench/interventions.json
	$(BIN)/python bench/slurm_bench.py --out results/bench/slurm.json
	$(BIN)/python bench/start_time.py --out results/bench/start_time.json
	@if [ -n "$(ISOENERGY)" ]; then $(BIN)/python bench/iso_energy_authors.py "$(ISOENERGY)" --out results/bench/iso_energy_authors.json; else echo "bench/iso_energy_authors.py skipped: set ISOENERGY to a checkout of github.com/Parabrele/IsoEnergy"; fi
	@$(BIN)/python bench/summary.py results/bench

# The CUDA paths against the CPU ones (bf16 embedding and training, speed, overcomplete on the same
# GPU): results/bench/gpu.json. Needs an NVIDIA GPU and a CUDA build of torch; without one it
# exits 2 with the reason. GPU_PYTHON: the interpreter whose torch sees the GPU (the project's
# .venv where it exists, else python3 with the project's dependencies importable).
GPU_PYTHON ?= $(if $(wildcard $(BIN)/python),$(BIN)/python,python3)
gpu-check:
	PYTHONPATH=$(CURDIR) $(GPU_PYTHON) bench/gpu_check.py --out results/bench/gpu.json

clean:
	rm -rf results logs .snakemake
