import sys
from pathlib import Path

from vlmsae.errors import VlmsaeError
from vlmsae.explorer import RunFiles, build_explorer
from vlmsae.metrics.evaluate import EvalSettings
from vlmsae.workflow.job_log import logged

with logged(snakemake.log[0], snakemake.threads):
    inputs = snakemake.input
    runs = [
        RunFiles(run["variant"], run["mixture"], run["seed"], Path(weights), Path(atoms),
                 Path(bridge_top), Path(inputs.atom_maps), Path(stability), Path(summary))
        for run, weights, atoms, bridge_top, stability, summary in zip(
            snakemake.params.runs, inputs.weights, inputs.atoms, inputs.bridge_top,
            inputs.atom_stability, inputs.summaries, strict=True)
    ]
    try:
        build_explorer(snakemake.output[0], inputs.store, runs,
                       EvalSettings(**snakemake.params.evaluation))
    except VlmsaeError as error:
        print(f"vlmsae: {error}", file=sys.stderr)  # one line in the log, not a traceback
        sys.exit(1)
