from pathlib import Path

import pandas as pd

from vlmsae.tables.papers import markdown
from vlmsae.tables.recovery import KEYS, recovery_table
from vlmsae.workflow.job_log import logged

with logged(snakemake.log[0]):
    table = recovery_table(pd.read_csv(snakemake.input.summary), snakemake.params.tau1)
    table.to_csv(snakemake.output.csv, index=False)
    Path(snakemake.output.md).write_text(markdown(table, KEYS))
