# Selection sweeps for regularisers set to 'sweep' (vlmsae.sweeps): one SAE per swept value,
# then the paper's selection rule writes the table and the chosen value that runs then use.
SWEEP_DIR = "results/sweeps/{dataset}/{model}/{variant}"


wildcard_constraints:
    parameter="|".join(SWEEP_PARAMETERS),
    value="[0-9.e+-]+",


def chosen_files(dataset, model, variant, parameters):
    return [f"results/sweeps/{dataset}/{model}/{variant}/{name}.json" for name in parameters]


def earlier_sweeps(wildcards):
    """The chosen values a sweep point needs: masking is swept on top of the chosen λ."""
    swept = swept_parameters(config["variants"][wildcards.variant])
    earlier = swept[: swept.index(wildcards.parameter)]
    return chosen_files(wildcards.dataset, wildcards.model, wildcards.variant, earlier)


rule train_sweep_point:
    input:
        store="results/embeddings/{dataset}/{model}.zarr",
        chosen=earlier_sweeps,
    output:
        weights=f"{SWEEP_DIR}/{{parameter}}/{{value}}/sae.safetensors",
        config=f"{SWEEP_DIR}/{{parameter}}/{{value}}/config.json",
        train_log=f"{SWEEP_DIR}/{{parameter}}/{{value}}/train_log.csv",
        point=f"{SWEEP_DIR}/{{parameter}}/{{value}}/point.json",
    params:
        variant=lambda wildcards: config["variants"][wildcards.variant],
        train=config["train"],
        evaluation=EVAL_SETTINGS,
        seed=config["sweeps"]["seed"],
    log:
        f"logs/sweeps/{{dataset}}/{{model}}/{{variant}}/{{parameter}}/{{value}}.log",
    threads: config["resources"]["train"]["threads"]
    resources:
        **rule_resources("train"),
    conda:
        "../envs/vlmsae.yaml"
    script:
        "../workflow_scripts/sweep_point.py"


rule select_sweep:
    input:
        lambda wildcards: [
            f"{SWEEP_DIR}/{{parameter}}/{value:g}/point.json".format(**wildcards)
            for value in sweep_points(wildcards.parameter, config["sweeps"])
        ],
    output:
        table=f"{SWEEP_DIR}/{{parameter}}.csv",
        chosen=f"{SWEEP_DIR}/{{parameter}}.json",
    params:
        settings=config["sweeps"],
        k=lambda wildcards: config["variants"][wildcards.variant].get("k"),
    log:
        "logs/sweeps/{dataset}/{model}/{variant}/{parameter}.log",
    conda:
        "../envs/vlmsae.yaml"
    script:
        "../workflow_scripts/sweep_select.py"
