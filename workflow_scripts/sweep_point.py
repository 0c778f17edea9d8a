import json
from pathlib import Path

from vlmsae.runs import PAIRED_MIXTURE
from vlmsae.stores.embedding_store import EmbeddingStore
from vlmsae.sweeps import point_variant, read_chosen, score_point
from vlmsae.training.trainer import TrainSettings, train
from vlmsae.training.variants import Variant
from vlmsae.workflow.job_log import logged

with logged(snakemake.log[0], snakemake.threads):
    store = EmbeddingStore(snakemake.input.store, verify=True)
    parameter, value = snakemake.wildcards.parameter, float(snakemake.wildcards.value)
    entry = Variant.from_config(snakemake.wildcards.variant, snakemake.params.variant)
    variant = point_variant(entry, parameter, value, read_chosen(snakemake.input.chosen))
    model = train(store, variant,
                  TrainSettings(**snakemake.params.train), PAIRED_MIXTURE,
                  snakemake.params.seed, Path(snakemake.output.weights).parent)
    point = {"parameter": parameter, "value": value,
             **score_point(model, store, snakemake.params.evaluation),
             "variant": variant.as_config()}
    Path(snakemake.output.point).write_text(json.dumps(point, indent=2))
