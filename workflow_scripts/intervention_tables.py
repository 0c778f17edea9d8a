from vlmsae.intervention_tables import gap_closing_table, stacked
from vlmsae.workflow import logged

with logged(snakemake.log[0], snakemake.threads):
    runs, table = snakemake.params.runs, snakemake.params.table
    if table == "gap_closing":
        edits = snakemake.params.edits
        n = len(edits)
        edited = [dict(zip(edits, snakemake.input.edited[i * n:(i + 1) * n])) for i in range(len(runs))]
        gap_closing_table(runs, snakemake.input.dense, edited).to_csv(snakemake.output.table, index=False)
        labels = ["dense", *edits]
        histogram_runs = [run for run in runs for _ in labels]
        paths = [path for i, dense in enumerate(snakemake.input.dense_histograms)
                 for path in (dense, *snakemake.input.edited_histograms[i * n:(i + 1) * n])]
        stacked(histogram_runs, paths, "edit", labels * len(runs)).to_csv(snakemake.output.histograms, index=False)
    else:
        stacked(runs, snakemake.input.tables).to_csv(snakemake.output.table, index=False)
        if "histograms" in snakemake.output.keys():
            stacked(runs, snakemake.input.histograms).to_csv(snakemake.output.histograms, index=False)
