# The offline concept explorer (vlmsae.explorer): per run the 2-D map of its atoms (UMAP of the
# decoder rows, also read by figures), per store one static page over all its runs.


rule atom_map:
    input:
        weights=f"results/sae/{RUN_DIR}/sae.safetensors",
    output:
        f"results/metrics/{RUN_DIR}/atom_map.parquet",
    log:
        f"logs/atom_map/{RUN_DIR}.log",
    conda:
        "../envs/analysis.yaml"
    params:
        seed=0,
    script:
        "../workflow_scripts/atom_map.py"


rule explorer:
    input:
        store="results/embeddings/{dataset}/{model}.zarr",
        weights=lambda wildcards: [
            f"results/sae/{run.path}/sae.safetensors"
            for run in runs_of_store(wildcards)
        ],
        configs=lambda wildcards: [
            f"results/sae/{run.path}/config.json" for run in runs_of_store(wildcards)
        ],
        atoms=lambda wildcards: [
            f"results/metrics/{run.path}/atoms.parquet"
            for run in runs_of_store(wildcards)
        ],
        bridge_top=lambda wildcards: [
            f"results/metrics/{run.path}/bridge_top.parquet"
            for run in runs_of_store(wildcards)
        ],
        atom_map=lambda wildcards: [
            f"results/metrics/{run.path}/atom_map.parquet"
            for run in runs_of_store(wildcards)
        ],
        atom_stability=lambda wildcards: [
            f"results/metrics/{run.dataset}/{run.model}/{run.variant}/atom_stability.parquet"
            for run in runs_of_store(wildcards)
        ],
    output:
        directory("results/explorer/{dataset}/{model}"),
    log:
        "logs/explorer/{dataset}/{model}.log",
    conda:
        "../envs/analysis.yaml"
    threads: config["resources"]["metrics"]["threads"]
    params:
        runs=lambda wildcards: [run.as_dict() for run in runs_of_store(wildcards)],
        evaluation=EVAL_SETTINGS,
    script:
        "../workflow_scripts/explorer.py"
