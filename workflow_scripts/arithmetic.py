from pathlib import Path

import pandas as pd

from vlmsae import sae
from vlmsae.interventions import parse
from vlmsae.interventions.arithmetic import measure, queries, store_triplets
from vlmsae.interventions.edits import kept_atoms
from vlmsae.stores.embedding_store import EmbeddingStore
from vlmsae.stores.manifest import verify_folders
from vlmsae.workflow.job_log import logged

with logged(snakemake.log[0], snakemake.threads):
    settings = parse("arithmetic", snakemake.params.settings)
    model = sae.load(Path(snakemake.input.weights).parent, require_manifest=True)
    verify_folders([snakemake.input.atoms], "metrics")
    gap_closing = parse("gap_closing", snakemake.params.gap_closing)
    keep = kept_atoms(pd.read_parquet(snakemake.input.atoms), gap_closing)
    triplets = store_triplets(EmbeddingStore(snakemake.input.store, verify=True), settings)
    kinds = queries(model, triplets, keep, settings.batch_size)
    summary, histograms = measure(kinds, triplets, settings)
    summary.assign(bimodal_atoms=int(keep.sum())).to_parquet(snakemake.output.summary, index=False)
    histograms.to_parquet(snakemake.output.histograms, index=False)
