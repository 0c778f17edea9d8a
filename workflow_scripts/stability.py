import pandas as pd
from safetensors.numpy import load_file

from vlmsae.metrics.stability import stability_tables
from vlmsae.stores.manifest import verify_folders
from vlmsae.workflow.job_log import logged

with logged(snakemake.log[0], snakemake.threads):
    verify_folders(snakemake.input.weights, "train")
    verify_folders(snakemake.input.atoms, "metrics")
    runs = [
        {**run, "dictionary": load_file(weights)["W_dec"],
         "energy": pd.read_parquet(atoms, columns=["energy"])["energy"].to_numpy()}
        for run, weights, atoms in zip(snakemake.params.runs, snakemake.input.weights,
                                       snakemake.input.atoms, strict=True)
    ]
    pairs, atoms = stability_tables(runs, snakemake.params.top_m)
    pairs.to_parquet(snakemake.output.pairs, index=False)
    atoms.to_parquet(snakemake.output.atoms, index=False)
