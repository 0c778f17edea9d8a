from pathlib import Path

from vlmsae.stores.embedding_store import EmbeddingStore
from vlmsae.sweeps import read_chosen, resolve_variant
from vlmsae.training.trainer import TrainSettings, train
from vlmsae.training.variants import Variant
from vlmsae.workflow.job_log import logged

with logged(snakemake.log[0], snakemake.threads):
    variant = Variant.from_config(snakemake.wildcards.variant, snakemake.params.variant)
    train(
        EmbeddingStore(snakemake.input.store),
        variant=resolve_variant(variant, read_chosen(snakemake.input.chosen)),
        settings=TrainSettings(**snakemake.params.train),
        mixture=snakemake.wildcards.mixture,
        seed=int(snakemake.wildcards.seed),
        out_dir=Path(snakemake.output.weights).parent,
        verify_store=True,
    )
