from vlmsae.figures import draw_job
from vlmsae.workflow.job_log import logged

with logged(snakemake.log[0]):
    draw_job(
        snakemake.params.figures,
        {name: list(paths) for name, paths in snakemake.input.items()},
        snakemake.params.runs,
        snakemake.params.settings,
    )
