from vlmsae.fixtures import write_fixtures
from vlmsae.workflow.job_log import logged

with logged(snakemake.log[0]):
    write_fixtures(snakemake.output[0])
