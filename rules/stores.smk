# Store-level metrics: what depends on a store's dense eval rows only (cones, dense retrieval and
# gap, the MMS baseline, dense zero-shot), computed once per store, not once per run.


rule store_metrics:
    input:
        store="results/embeddings/{dataset}/{model}.zarr",
        reference=mms_reference,
    output:
        summary="results/metrics/{dataset}/{model}/store.json",
        cone_histograms="results/metrics/{dataset}/{model}/cone_histograms.parquet",
        gap_histograms="results/metrics/{dataset}/{model}/gap_histograms.parquet",
        embedding_pca="results/metrics/{dataset}/{model}/embedding_pca.parquet",
        mms_dense="results/metrics/{dataset}/{model}/mms_dense.parquet",
    log:
        "logs/metrics/{dataset}/{model}/store.log",
    conda:
        "../envs/analysis.yaml"
    threads: config["resources"]["metrics"]["threads"]
    resources:
        **rule_resources("metrics"),
    params:
        evaluation=EVAL_SETTINGS,
    script:
        "../workflow_scripts/store_metrics.py"


rule stores_table:
    input:
        [f"results/metrics/{path}/store.json" for path in STORE_PATHS],
    output:
        "results/tables/stores.csv",
    log:
        "logs/tables/stores.log",
    conda:
        "../envs/analysis.yaml"
    params:
        stores=[
            dict(zip(("dataset", "model"), path.split("/"))) for path in STORE_PATHS
        ],
    script:
        "../workflow_scripts/stores_table.py"
