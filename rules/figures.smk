# Figures from the tables: one rule per registered figure (vlmsae.figures.FIGURES), so that each
# carries its own report caption, report/figures/<name>.rst. Input functions: rules/common.smk.
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


for entry in FIGURES:
    per_store = entry.extra["scope"] == "store"
    stem = f"{entry.name}/{{dataset}}/{{model}}" if per_store else entry.name

    rule:
        name:
            f"figure_{entry.name}"
        input:
            unpack(figure_inputs(entry.name)),
        output:
            png=figure_report(
                f"results/figures/{stem}.png",
                entry.name,
                "{dataset}/{model}" if per_store else "every store",
            ),
            svg=f"results/figures/{stem}.svg",
        log:
            f"logs/figures/{stem}.log",
        localrule: True
        conda:
            "../envs/analysis.yaml"
        params:
            figure=entry.name,
            settings=config["figures"].get(entry.name, {}),
            runs=figure_runs,
        script:
            "../workflow_scripts/figure.py"
