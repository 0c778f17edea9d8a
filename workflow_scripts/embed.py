import torch  # noqa: F401  (imported first, so that `logged` gives it the job's threads)

from vlmsae.stores.build import build_store
from vlmsae.workflow.job_log import logged

with logged(snakemake.log[0], snakemake.threads):
    build_store(
        snakemake.wildcards.dataset,
        snakemake.wildcards.model,
        snakemake.params.spec,
        snakemake.output[0],
        model_entry=snakemake.params.model_entry,
        embed=snakemake.params.embed,
    )
