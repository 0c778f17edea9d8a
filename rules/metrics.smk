# Per-run metrics on the store's eval split, then the summary table over all runs.


rule metrics:
    input:
        store="results/embeddings/{dataset}/{model}.zarr",
        weights=f"results/sae/{RUN_DIR}/sae.safetensors",
        config=f"results/sae/{RUN_DIR}/config.json",
    output:
        atoms=f"results/metrics/{RUN_DIR}/atoms.parquet",
        summary=f"results/metrics/{RUN_DIR}/summary.json",
    params:
        evaluation=config["evaluation"],
    log:
        f"logs/metrics/{RUN_DIR}.log",
    threads: config["resources"]["metrics"]["threads"]
    resources:
        **rule_resources("metrics"),
    conda:
        "../envs/vlmsae.yaml"
    script:
        "../workflow_scripts/metrics.py"


rule summary_table:
    input:
        [f"results/metrics/{run.path}/summary.json" for run in RUNS],
    output:
        "results/tables/summary.csv",
    params:
        runs=[run.as_dict() for run in RUNS],
    log:
        "logs/tables/summary.log",
    conda:
        "../envs/vlmsae.yaml"
    script:
        "../workflow_scripts/summary_table.py"
