# Figures from the tidy tables.


rule figure_r2_vs_l0:
    input:
        "results/tables/summary.csv",
    output:
        "results/figures/r2_vs_l0.png",
    log:
        "logs/figures/r2_vs_l0.log",
    conda:
        "../envs/vlmsae.yaml"
    script:
        "../workflow_scripts/figure_r2_vs_l0.py"


rule figure_modality_scores:
    input:
        lambda wildcards: [f"results/metrics/{run.path}/atoms.parquet"
                           for run in runs_of_store(wildcards)],
    output:
        "results/figures/modality_scores/{dataset}/{model}.png",
    params:
        runs=lambda wildcards: [run.as_dict() for run in runs_of_store(wildcards)],
    log:
        "logs/figures/modality_scores/{dataset}/{model}.log",
    conda:
        "../envs/vlmsae.yaml"
    script:
        "../workflow_scripts/figure_modality_scores.py"
