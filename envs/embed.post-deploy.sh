#!/usr/bin/env bash
# Run by snakemake after it creates envs/embed.yaml: laion-clap's and msclap's metadata pin
# numpy<2 (msclap's also transformers<5 and torchaudio, whose wheels pin another torch) although
# the code vlmsae uses runs without, so they are installed without their declared dependencies
# (the real ones come with the vlmsae package).
set -euo pipefail
pip install --no-deps laion-clap==1.1.7 msclap==1.3.4
