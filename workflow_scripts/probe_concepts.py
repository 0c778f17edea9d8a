from pathlib import Path

import pandas as pd

from vlmsae import sae
from vlmsae.interventions.probe import ProbeSettings, probe_concepts
from vlmsae.registry_base import parse_settings
from vlmsae.stores.embedding_store import EmbeddingStore
from vlmsae.stores.manifest import verify_folders
from vlmsae.workflow.job_log import logged

with logged(snakemake.log[0], snakemake.threads):
    verify_folders([snakemake.input.atoms], "metrics")
    settings = parse_settings(ProbeSettings, snakemake.params.probe, "interventions.probe")
    table = probe_concepts(
        EmbeddingStore(snakemake.input.store, verify=True),
        sae.load(Path(snakemake.input.weights).parent, require_manifest=True),
        pd.read_parquet(snakemake.input.atoms),
        settings,
    )
    status = table["probe_status"].iloc[0]
    if status != "ok":
        # The table keeps one row saying so; the log says it where a job's warnings are read.
        print(f"vlmsae: warning: probe of '{table['target'].iloc[0]}' is {status}: no atoms listed")
    table.to_parquet(snakemake.output[0], index=False)
