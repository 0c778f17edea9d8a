from pathlib import Path

import pandas as pd

from vlmsae import sae
from vlmsae.interventions.steering import SteeringSettings, steer_retrieval
from vlmsae.registry_base import parse_settings
from vlmsae.stores.embedding_store import EmbeddingStore
from vlmsae.stores.manifest import verify_folders
from vlmsae.stores.vocabulary import read_vocabulary
from vlmsae.workflow.job_log import logged

with logged(snakemake.log[0], snakemake.threads):
    verify_folders([snakemake.input.atoms], "metrics")
    settings = parse_settings(SteeringSettings, snakemake.params.steering, "interventions.steering")
    summary, items = steer_retrieval(
        EmbeddingStore(snakemake.input.store, verify=True),
        sae.load(Path(snakemake.input.weights).parent, require_manifest=True),
        pd.read_parquet(snakemake.input.atoms),
        read_vocabulary(snakemake.input.vocabulary),
        settings,
    )
    summary.to_parquet(snakemake.output.summary, index=False)
    items.to_parquet(snakemake.output.retrieved, index=False)
