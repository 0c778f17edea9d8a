# The offline concept explorer (vlmsae.explorer): per store the 2-D maps of its runs' atoms
# (UMAP of the decoder rows, also read by figures) and one static page over all its runs.


# One job per store, not per run: numba compiles UMAP anew in every process (about 15 s).
rule atom_map:
    input:
        weights=lambda wildcards: [
            f"results/sae/{run.sae_path}/sae.safetensors"
            for run in runs_of_store(wildcards)
        ],
    output:
        "results/metrics/{dataset}/{model}/atom_maps.parquet",
    log:
        "logs/atom_map/{dataset}/{model}.log",
    conda:
        "../envs/analysis.yaml"
    resources:
        # About 20 s a run at p = 8192 (bench/explorer_bench.py): a minute a run, an hour at least.
        runtime=lambda wildcards: max(60, len(runs_of_store(wildcards))),
    params:
        runs=lambda wildcards: [run.as_dict() for run in runs_of_store(wildcards)],
        seed=0,
    script:
        "../workflow_scripts/atom_map.py"


rule explorer:
    input:
        store="results/embeddings/{dataset}/{model}.zarr",
        weights=lambda wildcards: [
            f"results/sae/{run.sae_path}/sae.safetensors"
            for run in runs_of_store(wildcards)
        ],
        configs=lambda wildcards: [
            f"results/sae/{run.sae_path}/config.json"
            for run in runs_of_store(wildcards)
        ],
        atoms=lambda wildcards: [
            f"results/metrics/{run.path}/atoms.parquet"
            for run in runs_of_store(wildcards)
        ],
        bridge_top=lambda wildcards: [
            f"results/metrics/{run.path}/bridge_top.parquet"
            for run in runs_of_store(wildcards)
        ],
        atom_maps="results/metrics/{dataset}/{model}/atom_maps.parquet",
        atom_stability=lambda wildcards: [
            f"results/metrics/{run.dataset}/{run.model}/{run.variant}/atom_stability.parquet"
            for run in runs_of_store(wildcards)
        ],
        summaries=lambda wildcards: [
            f"results/metrics/{run.path}/summary.json"
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
