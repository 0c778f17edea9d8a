import json
from pathlib import Path

import pandas as pd

from vlmsae import sae
from vlmsae.health import HealthSettings, warn, with_health
from vlmsae.metrics.evaluate import EvalSettings, evaluate_run
from vlmsae.registry_base import parse_settings
from vlmsae.runs import Run
from vlmsae.stores.embedding_store import EmbeddingStore
from vlmsae.stores.manifest import write_folder_manifest
from vlmsae.stores.vocabulary import read_vocabulary
from vlmsae.workflow.job_log import logged

with logged(snakemake.log[0], snakemake.threads):
    model = sae.load(Path(snakemake.input.weights).parent, require_manifest=True)
    reference = [EmbeddingStore(path, verify=True) for path in snakemake.input.reference]
    # A vocabulary exists only where interventions.naming applies: an empty list elsewhere.
    vocabulary = [read_vocabulary(path) for path in snakemake.input.get("vocabulary", [])]
    atoms, summary, tables = evaluate_run(
        model, EmbeddingStore(snakemake.input.store, verify=True),
        EvalSettings(**snakemake.params.evaluation),
        reference_store=reference[0] if reference else None,
        vocabulary=vocabulary[0] if vocabulary else None,
        workers=snakemake.threads)
    summary, flags = with_health(
        summary, pd.read_csv(snakemake.input.train_log),
        parse_settings(HealthSettings, snakemake.params.health, "evaluation.health"))
    run = snakemake.wildcards
    warn(Run(run.dataset, run.model, run.variant, run.mixture, int(run.seed)).path, flags)
    atoms.to_parquet(snakemake.output.atoms, index=False)
    tables["bridge_top"].to_parquet(snakemake.output.bridge_top, index=False)
    Path(snakemake.output.summary).write_text(json.dumps(summary, indent=2, allow_nan=False))
    write_folder_manifest(Path(snakemake.output.summary).parent,
                          [Path(path).name for path in snakemake.output])
