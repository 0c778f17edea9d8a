import pandas as pd

from vlmsae.tables import atoms_table, summary_table
from vlmsae.workflow import logged

with logged(snakemake.log[0]):
    stability = pd.concat([pd.read_parquet(path) for path in snakemake.input.stability],
                          ignore_index=True)
    stability.to_csv(snakemake.output.stability, index=False)
    summary = summary_table(snakemake.params.runs, snakemake.input.summaries, stability)
    summary.to_csv(snakemake.output.summary, index=False)
    atoms_table(snakemake.params.runs, snakemake.input.bridge_top).to_csv(
        snakemake.output.bridge_top, index=False)
