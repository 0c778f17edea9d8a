from pathlib import Path

from vlmsae.store import EmbeddingStore
from vlmsae.sweeps import read_chosen, resolve_variant
from vlmsae.training.trainer import TrainSettings, train
from vlmsae.training.variants import Variant
from vlmsae.workflow import logged

with logged(snakemake.log[0], snakemake.threads):
    entry = resolve_variant(snakemake.params.variant, read_chosen(snakemake.input.chosen))
    train(
        EmbeddingStore(snakemake.input.store),
        variant=Variant.from_config(snakemake.wildcards.variant, entry),
        settings=TrainSettings(**snakemake.params.train),
        mixture=snakemake.wildcards.mixture,
        seed=int(snakemake.wildcards.seed),
        out_dir=Path(snakemake.output.weights).parent,
        verify_store=True,
    )
