from pathlib import Path

import pandas as pd

from vlmsae.tables.audio_benchmarks import KEYS as AUDIO_KEYS
from vlmsae.tables.audio_benchmarks import audio_benchmark_table
from vlmsae.tables.papers import (
    GRID_KEYS,
    PAPER_TABLES,
    SEEDS,
    group_sparse_grid,
    markdown,
    paper_table,
)
from vlmsae.workflow.job_log import logged

with logged(snakemake.log[0]):
    summary = pd.read_csv(snakemake.input.summary)
    stores = pd.read_csv(snakemake.input.stores)
    for name in PAPER_TABLES:
        table = paper_table(name, summary, stores)
        table.to_csv(snakemake.output[f"{name}_csv"], index=False)
        Path(snakemake.output[f"{name}_md"]).write_text(markdown(table))
    grid = group_sparse_grid(summary, pd.read_csv(snakemake.input.runs))
    grid.to_csv(snakemake.output.group_sparse_grid_csv, index=False)
    Path(snakemake.output.group_sparse_grid_md).write_text(markdown(grid, (*GRID_KEYS, SEEDS)))
    audio = audio_benchmark_table(summary, stores, snakemake.params.sources)
    audio.to_csv(snakemake.output.group_sparse_audio_csv, index=False)
    Path(snakemake.output.group_sparse_audio_md).write_text(markdown(audio, (*AUDIO_KEYS, SEEDS)))
