#!/usr/bin/env bash
# Run by snakemake after it creates envs/embed.yaml: laion-clap's metadata pins numpy<2 although
# its inference code runs on numpy 2, so it is installed without its declared dependencies (the
# real ones come with the vlmsae package).
set -euo pipefail
pip install --no-deps laion-clap==1.1.7
