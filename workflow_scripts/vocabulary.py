import torch  # noqa: F401  (imported first, so that `logged` gives it the job's threads)

from vlmsae.interventions.vocabulary import NamingSettings, build_vocabulary
from vlmsae.registry_base import parse_settings
from vlmsae.stores.embedding_store import EmbeddingStore
from vlmsae.stores.vocabulary import write_vocabulary
from vlmsae.workflow.job_log import logged

with logged(snakemake.log[0], snakemake.threads):
    settings = parse_settings(NamingSettings, snakemake.params.naming, "interventions.naming")
    vocabulary = build_vocabulary(
        EmbeddingStore(snakemake.input.store, verify=True),
        snakemake.params.source,
        settings,
        model_entry=snakemake.params.model_entry,
        embed=snakemake.params.embed,
    )
    write_vocabulary(vocabulary, snakemake.output[0])
