#!/usr/bin/env bash
# Run by snakemake after it creates envs/train.yaml: the vlmsae package, editable from the
# workflow's folder (${VLMSAE_ROOT}, set by the Snakefile), without its dependencies: the
# environment file lists the ones these rules use, pinned by constraints.txt.
set -euo pipefail
: "${VLMSAE_ROOT:?is set by the Snakefile to the folder of the workflow}"
pip install --no-deps -e "${VLMSAE_ROOT}"
