import sys
from pathlib import Path

from vlmsae.errors import VlmsaeError
from vlmsae.explorer.atom_map import store_atom_maps
from vlmsae.stores.manifest import verify_folders
from vlmsae.workflow.job_log import logged

with logged(snakemake.log[0], snakemake.threads):
    try:
        verify_folders(snakemake.input.weights, "train")
        maps = store_atom_maps(
            snakemake.params.runs, [Path(path) for path in snakemake.input.weights],
            snakemake.params.seed,
        )
    except VlmsaeError as error:
        print(f"vlmsae: {error}", file=sys.stderr)  # one line in the log, not a traceback
        sys.exit(1)
    maps.to_parquet(snakemake.output[0], index=False)
