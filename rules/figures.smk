# Figures from the tables (vlmsae.figures.FIGURES): one job per scope, the figures over every
# run (rule `figures`) and each store's (`figures_<dataset>_<model>`), each figure with its own
# report caption, report/figures/<name>.rst. The jobs: rules/common.smk (FIGURE_JOBS).
from vlmsae.figures import FIGURES


def figure_report(path, name, subcategory):
    """`path` marked for the report under its paper, captioned by report/figures/<name>.rst
    (a plugin's figure without a caption file is shown without one)."""
    caption = os.path.join("report", "figures", f"{name}.rst")
    has_caption = os.path.exists(os.path.join(workflow.basedir, caption))
    return report(
        path,
        caption=os.path.join("..", caption) if has_caption else None,
        category=FIGURES.get(name).extra.get("paper", "other figures"),
        subcategory=subcategory,
        labels={"figure": name, "covers": subcategory},
    )


for job in FIGURE_JOBS:

    rule:
        name:
            job.rule
        input:
            unpack(lambda wildcards, job=job: job_inputs(job, TABLE_PATHS)),
        output:
            png=[
                figure_report(path, name, job.subject)
                for name, path in job.figures.items()
            ],
            svg=[path.removesuffix(".png") + ".svg" for path in job.figures.values()],
        log:
            f"logs/figures/{job.rule}.log",
        localrule: True
        conda:
            "../envs/analysis.yaml"
        params:
            figures=job.figures,
            settings={name: config["figures"].get(name, {}) for name in job.figures},
            runs=job.runs,
        script:
            "../workflow_scripts/figure.py"
