# vlmsae: datasets -> embedding stores -> SAEs -> metrics -> tables and figures (DESIGN §1).
import os

# No step of the default DAG needs a network; without these, hub lookups wait on time-outs.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

from snakemake.utils import min_version

min_version("9.0")

# The embedded default applies only when no --configfile is given: snakemake would otherwise
# merge a preset's `datasets` and `variants` into the default's instead of replacing them.
if not workflow.config_settings.configfiles:

    configfile: os.path.join(workflow.basedir, "config.yaml")


include: "rules/common.smk"
include: "rules/embed.smk"
include: "rules/sweeps.smk"
include: "rules/train.smk"
include: "rules/metrics.smk"
include: "rules/figures.smk"


rule all:
    input:
        "results/tables/summary.csv",
        "results/figures/r2_vs_l0.png",
        expand("results/figures/modality_scores/{store}.png", store=STORE_PATHS),
