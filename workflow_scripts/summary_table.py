from vlmsae.tables import summary_table
from vlmsae.workflow import logged

with logged(snakemake.log[0]):
    summary_table(snakemake.params.runs, snakemake.input).to_csv(snakemake.output[0], index=False)
