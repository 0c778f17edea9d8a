from vlmsae.figures import draw_registered
from vlmsae.workflow.job_log import logged

with logged(snakemake.log[0]):
    draw_registered(
        snakemake.params.figure,
        {name: list(paths) for name, paths in snakemake.input.items()},
        snakemake.params.runs,
        snakemake.params.settings,
        snakemake.output.png,
    )
