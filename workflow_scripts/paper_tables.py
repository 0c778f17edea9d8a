from pathlib import Path

import pandas as pd

from vlmsae.tables.papers import PAPER_TABLES, markdown, paper_table
from vlmsae.workflow.job_log import logged

with logged(snakemake.log[0]):
    summary = pd.read_csv(snakemake.input.summary)
    stores = pd.read_csv(snakemake.input.stores)
    for name in PAPER_TABLES:
        table = paper_table(name, summary, stores)
        table.to_csv(snakemake.output[f"{name}_csv"], index=False)
        Path(snakemake.output[f"{name}_md"]).write_text(markdown(table))
