# One SAE per (dataset, model, variant, mixture, seed). Only this run's variant settings are
# params, so editing one variant re-runs that variant's descendants only. Values set to 'sweep'
# come from the sweep's chosen-value file (rules/sweeps.smk).


rule train:
    input:
        store="results/embeddings/{dataset}/{model}.zarr",
        chosen=chosen_of_run,
    output:
        weights=f"results/sae/{RUN_DIR}/sae.safetensors",
        config=f"results/sae/{RUN_DIR}/config.json",
        train_log=f"results/sae/{RUN_DIR}/train_log.csv",
    log:
        f"logs/train/{RUN_DIR}.log",
    benchmark:
        f"results/benchmarks/train/{RUN_DIR}.tsv"
    conda:
        "../envs/train.yaml"
    threads: config["resources"]["train"]["threads"]
    resources:
        **rule_resources("train"),
    params:
        variant=lambda wildcards: config["variants"][wildcards.variant],
        train=config["train"],
    script:
        "../workflow_scripts/train.py"
