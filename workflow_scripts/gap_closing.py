import json
from pathlib import Path

import pandas as pd

from vlmsae import sae
from vlmsae.interventions import parse
from vlmsae.interventions.edits import store_codes, write_edited_store
from vlmsae.metrics.evaluate import EvalSettings, evaluate_store
from vlmsae.stores.embedding_store import EmbeddingStore
from vlmsae.stores.manifest import verify_folders
from vlmsae.workflow.job_log import logged

with logged(snakemake.log[0], snakemake.threads):
    store = EmbeddingStore(snakemake.input.store, verify=True)
    reference = [EmbeddingStore(path, verify=True) for path in snakemake.input.reference]
    settings = parse("gap_closing", snakemake.params.settings)
    output = snakemake.output
    # A run's edits (rule gap_closing) share one encoding of every row; the store's own
    # (rule mean_shift_store) need no SAE.
    model = atoms = codes = None
    run = "none"
    if "weights" in snakemake.input.keys():
        run = str(Path(snakemake.input.weights).parent)
        verify_folders([snakemake.input.atoms], "metrics")
        model = sae.load(Path(run), require_manifest=True)
        atoms = pd.read_parquet(snakemake.input.atoms)
        codes = store_codes(model, store, settings.batch_size)
    for i, edit in enumerate(snakemake.params.edits):
        edited = write_edited_store(
            store, output.stores[i], edit, model, atoms, settings, run, codes)
        summary, tables = evaluate_store(
            EmbeddingStore(edited), EvalSettings(**snakemake.params.evaluation),
            reference_store=reference[0] if reference else None, workers=snakemake.threads)
        tables["cone_histograms"].to_parquet(output.cone_histograms[i], index=False)
        tables["gap_histograms"].to_parquet(output.gap_histograms[i], index=False)
        Path(output.summaries[i]).write_text(json.dumps(summary, indent=2, allow_nan=False))
