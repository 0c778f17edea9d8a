import sys
from pathlib import Path

from vlmsae.errors import VlmsaeError
from vlmsae.explorer import atom_map
from vlmsae.explorer.inputs import read_decoder
from vlmsae.manifest import verify_folders
from vlmsae.workflow import logged

with logged(snakemake.log[0], snakemake.threads):
    try:
        verify_folders([snakemake.input.weights], "train")
        coordinates = atom_map(read_decoder(Path(snakemake.input.weights)), snakemake.params.seed)
    except VlmsaeError as error:
        print(f"vlmsae: {error}", file=sys.stderr)  # one line in the log, not a traceback
        sys.exit(1)
    coordinates.to_parquet(snakemake.output[0], index=False)
