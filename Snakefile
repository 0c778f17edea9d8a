# vlmsae: datasets -> embedding stores -> SAEs -> metrics -> tables, figures (docs/architecture.md).
import os

# No step of the default DAG needs a network; without these, hub lookups wait on time-outs.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
# The conda environments (envs/*.yaml and their post-deploy scripts) install this workflow's
# package and constraints.txt from here: Snakemake copies an env file to .snakemake/conda/
# before conda reads it, so relative paths in it would miss; pip expands ${VLMSAE_ROOT}.
os.environ["VLMSAE_ROOT"] = workflow.basedir
# numpy without its AVX-512 sort on AMD CPUs, where it is 5x slower than the AVX2 one (a job
# reads it when it imports numpy; vlmsae.job_environment says why and what it costs).
from vlmsae.job_environment import set_job_environment

set_job_environment(os.environ)


envvars:
    "VLMSAE_ROOT",


from snakemake.utils import min_version

min_version("9.0")

# The embedded default applies only when no --configfile is given: snakemake would otherwise
# merge a preset's `datasets` and `variants` into the default's instead of replacing them.
if not workflow.config_settings.configfiles:

    configfile: os.path.join(workflow.basedir, "config.yaml")


# `snakemake --report results/report.html` (make report): this description, every figure and
# table with its caption (report/).
report: "report/workflow.rst"


include: "rules/common.smk"


# Before any job: a file where an output's folder must go (results/embeddings written as a
# file), and a CUDA device or half precision asked of jobs that will run here on a machine
# without CUDA, are one line now rather than a traceback or a failed job after hours of
# embedding. Jobs a cluster profile submits run elsewhere and check their own node
# (vlmsae.devices).
onstart:
    try:
        check_output_folders(
            path
            for job in workflow.dag.needrun_jobs()
            for path in [*job.output, *job.log]
        )
        if workflow.local_exec:
            check_local_devices(
                config, local_device_sections(workflow.dag.needrun_jobs())
            )
    except VlmsaeError as error:
        sys.exit(f"vlmsae: {error}")


# After failed jobs: one line each (rule, output, reason, logs) below Snakemake's report, e.g. a
# SLURM job killed for memory or refused by sbatch (vlmsae.workflow.failed_jobs).
onerror:
    for line in failed_job_lines(log, os.getcwd()):
        print(line, file=sys.stderr)


include: "rules/embed.smk"
include: "rules/sweeps.smk"
include: "rules/train.smk"
include: "rules/metrics.smk"
include: "rules/stores.smk"
include: "rules/figures.smk"
include: "rules/paper_tables.smk"
include: "rules/synthetic_recovery.smk"
include: "rules/explorer.smk"
include: "rules/interventions.smk"


# Quick jobs (tables, a sweep's rounds and choice, the tiny fixtures; figures and paper tables say
# `localrule: True` themselves): run by the main process, never submitted to a cluster.
localrules:
    all,
    fixtures,
    sweep_round,
    select_sweep,
    summary_table,
    stores_table,
    gap_closing_table,
    vector_arithmetic_table,
    probe_concepts_table,
    steering_table,


rule all:
    input:
        "results/tables/summary.csv",
        "results/tables/stores.csv",
        FIGURE_TARGETS,
        rules.paper_tables.output,
        rules.synthetic_recovery.output if SYNTHETIC_TAU1 else [],
        expand("results/explorer/{store}", store=STORE_PATHS),
        INTERVENTION_TABLES,
