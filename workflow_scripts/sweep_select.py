import json
from pathlib import Path

import pandas as pd

from vlmsae.sweeps import select
from vlmsae.workflow import logged

with logged(snakemake.log[0]):
    points = [json.loads(Path(path).read_text()) for path in snakemake.input]
    table = pd.DataFrame([{key: p[key] for key in ("value", "r2", "l0", "dead_atoms")}
                          for p in points])
    result = select(snakemake.wildcards.parameter, table, snakemake.params.settings,
                    snakemake.params.k)
    pd.DataFrame(result.pop("table")).to_csv(snakemake.output.table, index=False)
    Path(snakemake.output.chosen).write_text(json.dumps(result, indent=2))
