# Interventions (vlmsae.interventions): edited stores, each measured like any store (gap closing),
# vector arithmetic, the vocabulary that names atoms (read by rule metrics), probe decomposition,
# steering, and their tables. Input functions and run lists: rules/common.smk.


if RUN_GAP_EDITS:

    rule gap_closing:
        input:
            store="results/embeddings/{dataset}/{model}.zarr",
            reference=mms_reference,
            weights=sae_file("sae.safetensors"),
            atoms=f"results/metrics/{RUN_DIR}/atoms.parquet",
        output:
            stores=[
                directory(f"{INTERVENTION_DIR}/edits/{edit}.zarr")
                for edit in RUN_GAP_EDITS
            ],
            summaries=[
                f"{INTERVENTION_DIR}/edits/{edit}.json" for edit in RUN_GAP_EDITS
            ],
            cone_histograms=[
                f"{INTERVENTION_DIR}/edits/{edit}_cone_histograms.parquet"
                for edit in RUN_GAP_EDITS
            ],
            gap_histograms=[
                f"{INTERVENTION_DIR}/edits/{edit}_gap_histograms.parquet"
                for edit in RUN_GAP_EDITS
            ],
        log:
            f"logs/interventions/{RUN_DIR}/gap_closing.log",
        conda:
            "../envs/analysis.yaml"
        threads: config["resources"]["metrics"]["threads"]
        resources:
            **rule_resources("metrics"),
        params:
            edits=RUN_GAP_EDITS,
            evaluation=EVAL_SETTINGS,
            settings=config["interventions"]["gap_closing"],
        script:
            "../workflow_scripts/gap_closing.py"


# The edits of the dense rows alone (the mean-shift baseline), once per store for all its runs.
rule mean_shift_store:
    input:
        store="results/embeddings/{dataset}/{model}.zarr",
        reference=mms_reference,
    output:
        stores=[directory(f"{STORE_EDIT_DIR}/{edit}.zarr") for edit in STORE_EDITS],
        summaries=[f"{STORE_EDIT_DIR}/{edit}.json" for edit in STORE_EDITS],
        cone_histograms=[
            f"{STORE_EDIT_DIR}/{edit}_cone_histograms.parquet" for edit in STORE_EDITS
        ],
        gap_histograms=[
            f"{STORE_EDIT_DIR}/{edit}_gap_histograms.parquet" for edit in STORE_EDITS
        ],
    log:
        "logs/interventions/{dataset}/{model}/store_edits.log",
    conda:
        "../envs/analysis.yaml"
    threads: config["resources"]["metrics"]["threads"]
    resources:
        **rule_resources("metrics"),
    params:
        edits=STORE_EDITS,
        evaluation=EVAL_SETTINGS,
        settings=config["interventions"]["gap_closing"],
    script:
        "../workflow_scripts/gap_closing.py"


rule arithmetic:
    input:
        store="results/embeddings/{dataset}/{model}.zarr",
        weights=sae_file("sae.safetensors"),
        atoms=f"results/metrics/{RUN_DIR}/atoms.parquet",
    output:
        summary=f"{INTERVENTION_DIR}/arithmetic.parquet",
        histograms=f"{INTERVENTION_DIR}/arithmetic_histograms.parquet",
    log:
        f"logs/interventions/{RUN_DIR}/arithmetic.log",
    conda:
        "../envs/analysis.yaml"
    threads: config["resources"]["metrics"]["threads"]
    resources:
        **rule_resources("metrics"),
    params:
        settings=config["interventions"]["arithmetic"],
        gap_closing=config["interventions"]["gap_closing"],
    script:
        "../workflow_scripts/arithmetic.py"


rule gap_closing_table:
    input:
        dense=gap_closing_store_files("store.json"),
        dense_histograms=gap_closing_store_files("gap_histograms.parquet"),
        dense_cones=gap_closing_store_files("cone_histograms.parquet"),
        edited=gap_closing_edit_files(".json"),
        edited_histograms=gap_closing_edit_files("_gap_histograms.parquet"),
        edited_cones=gap_closing_edit_files("_cone_histograms.parquet"),
    output:
        table="results/tables/gap_closing.csv",
        histograms="results/tables/gap_histograms.csv",
    log:
        "logs/tables/gap_closing.log",
    conda:
        "../envs/analysis.yaml"
    params:
        runs=intervention_params("gap_closing"),
        edits=GAP_EDITS,
        table="gap_closing",
    script:
        "../workflow_scripts/intervention_tables.py"


rule vector_arithmetic_table:
    input:
        tables=intervention_files("arithmetic", "arithmetic.parquet"),
        histograms=intervention_files("arithmetic", "arithmetic_histograms.parquet"),
    output:
        table="results/tables/vector_arithmetic.csv",
        histograms="results/tables/arithmetic_histograms.csv",
    log:
        "logs/tables/vector_arithmetic.log",
    conda:
        "../envs/analysis.yaml"
    params:
        runs=intervention_params("arithmetic"),
        table="vector_arithmetic",
    script:
        "../workflow_scripts/intervention_tables.py"


rule vocabulary:
    input:
        store="results/embeddings/{dataset}/{model}.zarr",
        model_files=embed_inputs,
    output:
        directory("results/vocabulary/{dataset}/{model}.zarr"),
    log:
        "logs/vocabulary/{dataset}/{model}.log",
    conda:
        "../envs/embed.yaml"
    threads: config["resources"]["embed"]["threads"]
    resources:
        mem_mb=rule_resources("embed")["mem_mb"],
        runtime=rule_resources("embed")["runtime"],
        gpu=embed_resources,
    params:
        naming=config["interventions"]["naming"],
        source=lambda wildcards: config["datasets"][wildcards.dataset]["source"],
        model_entry=lambda wildcards: config["models"].get(wildcards.model),
        embed=config["embed"],
    script:
        "../workflow_scripts/vocabulary.py"


rule probe_concepts:
    input:
        store="results/embeddings/{dataset}/{model}.zarr",
        weights=sae_file("sae.safetensors"),
        atoms=f"results/metrics/{RUN_DIR}/atoms.parquet",
    output:
        f"{INTERVENTION_DIR}/probe_concepts.parquet",
    log:
        f"logs/interventions/{RUN_DIR}/probe_concepts.log",
    conda:
        "../envs/analysis.yaml"
    threads: config["resources"]["metrics"]["threads"]
    resources:
        **rule_resources("metrics"),
    params:
        probe=config["interventions"]["probe"],
    script:
        "../workflow_scripts/probe_concepts.py"


rule steering:
    input:
        store="results/embeddings/{dataset}/{model}.zarr",
        weights=sae_file("sae.safetensors"),
        atoms=f"results/metrics/{RUN_DIR}/atoms.parquet",
        vocabulary="results/vocabulary/{dataset}/{model}.zarr",
    output:
        summary=f"{INTERVENTION_DIR}/steering.parquet",
        retrieved=f"{INTERVENTION_DIR}/steering_items.parquet",
    log:
        f"logs/interventions/{RUN_DIR}/steering.log",
    conda:
        "../envs/analysis.yaml"
    threads: config["resources"]["metrics"]["threads"]
    resources:
        **rule_resources("metrics"),
    params:
        steering=config["interventions"]["steering"],
    script:
        "../workflow_scripts/steering.py"


rule probe_concepts_table:
    input:
        tables=intervention_files("probe", "probe_concepts.parquet"),
    output:
        table="results/tables/probe_concepts.csv",
    log:
        "logs/tables/probe_concepts.log",
    conda:
        "../envs/analysis.yaml"
    params:
        runs=intervention_params("probe"),
        table="probe_concepts",
    script:
        "../workflow_scripts/intervention_tables.py"


rule steering_table:
    input:
        tables=intervention_files("steering", "steering.parquet"),
    output:
        table="results/tables/steering.csv",
    log:
        "logs/tables/steering.log",
    conda:
        "../envs/analysis.yaml"
    params:
        runs=intervention_params("steering"),
        table="steering",
    script:
        "../workflow_scripts/intervention_tables.py"
