# The three papers' tables (vlmsae.tables.papers) in CSV and Markdown, from the tidy tables. The
# tidy tables it reads are marked for the report here too, so the report holds every table.


rule paper_tables:
    input:
        summary=report(
            TABLE_PATHS["summary"],
            caption="../report/tables/summary.rst",
            category="tables",
        ),
        stores=report(
            TABLE_PATHS["stores"],
            caption="../report/tables/stores.rst",
            category="tables",
        ),
        runs=TABLE_PATHS["runs"],
    output:
        linear_structure_csv=report(
            "results/tables/linear_structure.csv",
            caption="../report/tables/linear_structure.rst",
            category="tables",
        ),
        linear_structure_md="results/tables/linear_structure.md",
        iso_energy_csv=report(
            "results/tables/iso_energy.csv",
            caption="../report/tables/iso_energy.rst",
            category="tables",
        ),
        iso_energy_md="results/tables/iso_energy.md",
        group_sparse_csv=report(
            "results/tables/group_sparse.csv",
            caption="../report/tables/group_sparse.rst",
            category="tables",
        ),
        group_sparse_md="results/tables/group_sparse.md",
        group_sparse_grid_csv=report(
            "results/tables/group_sparse_grid.csv",
            caption="../report/tables/group_sparse_grid.rst",
            category="tables",
        ),
        group_sparse_grid_md="results/tables/group_sparse_grid.md",
        group_sparse_audio_csv=report(
            "results/tables/group_sparse_audio.csv",
            caption="../report/tables/group_sparse_audio.rst",
            category="tables",
        ),
        group_sparse_audio_md="results/tables/group_sparse_audio.md",
    log:
        "logs/tables/paper_tables.log",
    localrule: True
    conda:
        "../envs/analysis.yaml"
    params:
        # The audio benchmarks' table finds its stores by source (GTZAN, NSynth, FMACaps).
        sources={name: spec["source"] for name, spec in config["datasets"].items()},
    script:
        "../workflow_scripts/paper_tables.py"
