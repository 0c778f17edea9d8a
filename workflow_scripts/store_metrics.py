import json
from pathlib import Path

from vlmsae.metrics.evaluate import EvalSettings, evaluate_store
from vlmsae.stores.embedding_store import EmbeddingStore
from vlmsae.workflow.job_log import logged

with logged(snakemake.log[0], snakemake.threads):
    reference = [EmbeddingStore(path, verify=True) for path in snakemake.input.reference]
    summary, tables = evaluate_store(
        EmbeddingStore(snakemake.input.store, verify=True),
        EvalSettings(**snakemake.params.evaluation),
        reference_store=reference[0] if reference else None,
        workers=snakemake.threads)
    for name, path in snakemake.output.items():
        if name != "summary":
            tables[name].to_parquet(path, index=False)
    Path(snakemake.output.summary).write_text(json.dumps(summary, indent=2, allow_nan=False))
