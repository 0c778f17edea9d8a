import pandas as pd

from vlmsae.stores.manifest import verify_folders
from vlmsae.tables.summary import atoms_table, health_table, long_table, runs_table, summary_table
from vlmsae.workflow.job_log import logged

with logged(snakemake.log[0]):
    runs = snakemake.params.runs
    verify_folders(snakemake.input.summaries, "metrics")
    verify_folders(snakemake.input.configs, "train")
    stability = pd.concat([pd.read_parquet(path) for path in snakemake.input.stability],
                          ignore_index=True)
    stability.to_csv(snakemake.output.stability, index=False)
    pd.concat([pd.read_parquet(path) for path in snakemake.input.atom_stability],
              ignore_index=True).to_parquet(snakemake.output.atom_stability, index=False)
    summary = summary_table(runs, snakemake.input.summaries, stability)
    summary.to_csv(snakemake.output.summary, index=False)
    health_table(summary).to_csv(snakemake.output.health, index=False)
    long_table(summary).to_csv(snakemake.output.long, index=False)
    runs_table(runs, snakemake.input.configs, snakemake.input.summaries).to_csv(
        snakemake.output.runs, index=False)
    atoms_table(runs, snakemake.input.bridge_top).to_csv(snakemake.output.bridge_top, index=False)
