import json
from pathlib import Path

import pandas as pd

from vlmsae.sweeps import sweep_round
from vlmsae.workflow.job_log import logged

with logged(snakemake.log[0]):
    if snakemake.rule == "sweep_round":
        # One round: the selection rule over every point so far, and the extension it asks for.
        points = [json.loads(Path(path).read_text()) for path in snakemake.input.points]
        previous = [json.loads(Path(path).read_text()) for path in snakemake.input.previous]
        result = sweep_round(snakemake.wildcards.parameter, points, (previous or [None])[0],
                             snakemake.params.settings, snakemake.params.k)
        Path(snakemake.output.result).write_text(json.dumps(result, indent=2))
    else:
        # The sweep's last round, as the table and the chosen value the runs read.
        result = json.loads(Path(snakemake.input.result).read_text())
        pd.DataFrame(result.pop("table")).to_csv(snakemake.output.table, index=False)
        Path(snakemake.output.chosen).write_text(json.dumps(result, indent=2))
