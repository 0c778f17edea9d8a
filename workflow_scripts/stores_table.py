from vlmsae.tables.summary import stores_table
from vlmsae.workflow.job_log import logged

with logged(snakemake.log[0]):
    stores_table(snakemake.params.stores, snakemake.input).to_csv(snakemake.output[0], index=False)
