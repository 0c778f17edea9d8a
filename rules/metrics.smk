# Per-run metrics on the store's eval split, then the summary table over all runs.
# Input functions: rules/common.smk.


rule metrics:
    input:
        store="results/embeddings/{dataset}/{model}.zarr",
        reference=mms_reference,
        weights=sae_file("sae.safetensors"),
        config=sae_file("config.json"),
        train_log=sae_file("train_log.csv"),
        vocabulary=vocabulary_input,
    output:
        atoms=f"results/metrics/{RUN_DIR}/atoms.parquet",
        summary=f"results/metrics/{RUN_DIR}/summary.json",
        bridge_top=f"results/metrics/{RUN_DIR}/bridge_top.parquet",
    log:
        f"logs/metrics/{RUN_DIR}.log",
    conda:
        "../envs/analysis.yaml"
    threads: config["resources"]["metrics"]["threads"]
    resources:
        **rule_resources("metrics"),
    params:
        evaluation=EVAL_SETTINGS,
        health=config["evaluation"]["health"],
    script:
        "../workflow_scripts/metrics.py"


rule summary_table:
    input:
        summaries=[f"results/metrics/{run.path}/summary.json" for run in RUNS],
        stability=[
            f"results/metrics/{path}/stability.parquet" for path in VARIANT_PATHS
        ],
        atom_stability=[
            f"results/metrics/{path}/atom_stability.parquet" for path in VARIANT_PATHS
        ],
        bridge_top=[f"results/metrics/{run.path}/bridge_top.parquet" for run in RUNS],
        configs=[f"results/sae/{run.sae_path}/config.json" for run in RUNS],
    output:
        summary="results/tables/summary.csv",
        health=report(
            "results/tables/health.csv",
            caption="../report/tables/health.rst",
            category="tables",
        ),
        long="results/tables/metrics_long.csv",
        runs="results/tables/runs.csv",
        stability="results/tables/stability.csv",
        atom_stability="results/tables/atom_stability.parquet",
        bridge_top="results/tables/bridge_top.csv",
    log:
        "logs/tables/summary.log",
    conda:
        "../envs/analysis.yaml"
    params:
        runs=[{**run.as_dict(), "trained_on": run.trained_on} for run in RUNS],
    script:
        "../workflow_scripts/summary_table.py"


rule stability:
    input:
        weights=lambda wildcards: [
            f"results/sae/{run.sae_path}/sae.safetensors"
            for run in runs_of_variant(wildcards)
        ],
        atoms=lambda wildcards: [
            f"results/metrics/{run.path}/atoms.parquet"
            for run in runs_of_variant(wildcards)
        ],
    output:
        pairs="results/metrics/{dataset}/{model}/{variant}/stability.parquet",
        atoms="results/metrics/{dataset}/{model}/{variant}/atom_stability.parquet",
    log:
        "logs/metrics/{dataset}/{model}/{variant}/stability.log",
    conda:
        "../envs/analysis.yaml"
    threads: config["resources"]["metrics"]["threads"]
    resources:
        **rule_resources("metrics"),
    params:
        runs=lambda wildcards: [run.as_dict() for run in runs_of_variant(wildcards)],
        top_m=config["evaluation"]["stability_top_m"],
    script:
        "../workflow_scripts/stability.py"
