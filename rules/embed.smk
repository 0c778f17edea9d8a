# Embedding stores: one zarr store per (dataset, model), built by the dataset's source.


rule embed:
    output:
        directory("results/embeddings/{dataset}/{model}.zarr"),
    params:
        spec=lambda wildcards: config["datasets"][wildcards.dataset],
    log:
        "logs/embed/{dataset}/{model}.log",
    threads: config["resources"]["embed"]["threads"]
    resources:
        **rule_resources("embed"),
    conda:
        "../envs/vlmsae.yaml"
    script:
        "../workflow_scripts/embed.py"
