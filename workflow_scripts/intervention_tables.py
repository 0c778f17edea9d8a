from vlmsae.intervention_tables import gap_closing_table, gap_histograms_table, stacked
from vlmsae.workflow import logged

with logged(snakemake.log[0], snakemake.threads):
    runs, table = snakemake.params.runs, snakemake.params.table
    if table == "gap_closing":
        edits = snakemake.params.edits
        n = len(edits)
        per_run = [slice(i * n, (i + 1) * n) for i in range(len(runs))]
        edited = [dict(zip(edits, snakemake.input.edited[rows])) for rows in per_run]
        gap_closing_table(runs, snakemake.input.dense, edited).to_csv(snakemake.output.table, index=False)
        histograms = gap_histograms_table(
            runs, ["dense", *edits],
            [[dense, *snakemake.input.edited_histograms[rows]]
             for dense, rows in zip(snakemake.input.dense_histograms, per_run)],
            [[dense, *snakemake.input.edited_cones[rows]]
             for dense, rows in zip(snakemake.input.dense_cones, per_run)])
        histograms.to_csv(snakemake.output.histograms, index=False)
    else:
        stacked(runs, snakemake.input.tables).to_csv(snakemake.output.table, index=False)
        if "histograms" in snakemake.output.keys():
            stacked(runs, snakemake.input.histograms).to_csv(snakemake.output.histograms, index=False)
