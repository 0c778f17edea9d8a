import json
from pathlib import Path

from vlmsae.config import PAIRED_MIXTURE
from vlmsae.store import EmbeddingStore
from vlmsae.sweeps import point_variant, read_chosen, score_point
from vlmsae.training.trainer import TrainSettings, train
from vlmsae.training.variants import Variant
from vlmsae.workflow import logged

with logged(snakemake.log[0], snakemake.threads):
    store = EmbeddingStore(snakemake.input.store, verify=True)
    parameter, value = snakemake.wildcards.parameter, float(snakemake.wildcards.value)
    entry = point_variant(snakemake.params.variant, parameter, value,
                          read_chosen(snakemake.input.chosen))
    model = train(store, Variant.from_config(snakemake.wildcards.variant, entry),
                  TrainSettings(**snakemake.params.train), PAIRED_MIXTURE,
                  snakemake.params.seed, Path(snakemake.output.weights).parent)
    point = {"parameter": parameter, "value": value,
             **score_point(model, store, snakemake.params.evaluation), "variant": entry}
    Path(snakemake.output.point).write_text(json.dumps(point, indent=2))
