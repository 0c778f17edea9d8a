# Embedding stores: one zarr store per (dataset, model). Embedding sources (synthetic,
# precomputed, clip_retrieval) write their arrays; raw sources run the model over the dataset
# (GPU when the profile gives one), resumably: a killed job continues from its last block.
# Input and resource functions: rules/common.smk.
rule embed:
    input:
        embed_inputs,
    output:
        directory("results/embeddings/{dataset}/{model}.zarr"),
    log:
        "logs/embed/{dataset}/{model}.log",
    benchmark:
        "results/benchmarks/embed/{dataset}/{model}.tsv"
    conda:
        "../envs/embed.yaml"
    threads: embed_threads
    resources:
        mem_mb=rule_resources("embed")["mem_mb"],
        runtime=rule_resources("embed")["runtime"],
        gpu=embed_resources,
    params:
        spec=lambda wildcards: config["datasets"][wildcards.dataset],
        model_entry=lambda wildcards: config["models"].get(wildcards.model),
        embed=config["embed"],
    script:
        "../workflow_scripts/embed.py"


rule fixtures:
    output:
        directory(FIXTURES),
    log:
        "logs/fixtures.log",
    conda:
        "../envs/embed.yaml"
    script:
        "../workflow_scripts/fixtures.py"
