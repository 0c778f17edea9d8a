# Selection sweeps for regularisers set to 'sweep' (vlmsae.sweeps): one SAE per swept value,
# then the paper's selection rule writes the table and the chosen value that runs then use.
# SWEEP_DIR and the other input functions: rules/common.smk.


wildcard_constraints:
    parameter="|".join(SWEEP_PARAMETERS),
    value="[0-9.e+-]+",
    round="[0-9]+",


rule train_sweep_point:
    input:
        store="results/embeddings/{dataset}/{model}.zarr",
        chosen=earlier_sweeps,
    output:
        weights=f"{SWEEP_DIR}/{{parameter}}/{{value}}/sae.safetensors",
        config=f"{SWEEP_DIR}/{{parameter}}/{{value}}/config.json",
        train_log=f"{SWEEP_DIR}/{{parameter}}/{{value}}/train_log.csv",
        point=f"{SWEEP_DIR}/{{parameter}}/{{value}}/point.json",
    log:
        "logs/sweeps/{dataset}/{model}/{variant}/{parameter}/{value}.log",
    benchmark:
        "results/benchmarks/sweeps/{dataset}/{model}/{variant}/{parameter}/{value}.tsv"
    conda:
        "../envs/train.yaml"
    threads: config["resources"]["train"]["threads"]
    resources:
        **rule_resources("train"),
    params:
        variant=lambda wildcards: config["variants"][wildcards.variant],
        train=config["train"],
        evaluation=EVAL_SETTINGS,
        seed=config["sweeps"]["seed"],
    script:
        "../workflow_scripts/sweep_point.py"


# The grid grows one value per round, each decided by the round before, so the rounds are a
# checkpoint: its result tells Snakemake which points the next round needs, and those points are
# ordinary train_sweep_point jobs (their own resources, logs and reuse), never trained in here.
checkpoint sweep_round:
    input:
        points=round_points,
        previous=previous_round,
    output:
        result=f"{SWEEP_DIR}/{{parameter}}/round{{round}}.json",
    log:
        "logs/sweeps/{dataset}/{model}/{variant}/{parameter}/round{round}.log",
    conda:
        "../envs/analysis.yaml"
    params:
        settings=config["sweeps"],
        k=lambda wildcards: variant_of(wildcards.variant).k,
    script:
        "../workflow_scripts/sweep_select.py"


rule select_sweep:
    input:
        result=last_round,
    output:
        table=f"{SWEEP_DIR}/{{parameter}}.csv",
        chosen=f"{SWEEP_DIR}/{{parameter}}.json",
    log:
        "logs/sweeps/{dataset}/{model}/{variant}/{parameter}.log",
    conda:
        "../envs/analysis.yaml"
    script:
        "../workflow_scripts/sweep_select.py"
