from vlmsae.tables.interventions import gap_closing_table, gap_histograms_table, stacked
from vlmsae.workflow.job_log import logged

with logged(snakemake.log[0], snakemake.threads):
    runs, table, output = snakemake.params.runs, snakemake.params.table, snakemake.output
    if table == "gap_closing":
        edits, files = snakemake.params.edits, snakemake.input
        per_run = [slice(i * len(edits), (i + 1) * len(edits)) for i in range(len(runs))]
        edited = [dict(zip(edits, files.edited[rows], strict=True)) for rows in per_run]
        gap_closing_table(runs, files.dense, edited).to_csv(output.table, index=False)
        histograms = gap_histograms_table(
            runs, ["dense", *edits],
            [[dense, *files.edited_histograms[rows]]
             for dense, rows in zip(files.dense_histograms, per_run, strict=True)],
            [[dense, *files.edited_cones[rows]]
             for dense, rows in zip(files.dense_cones, per_run, strict=True)])
        histograms.to_csv(output.histograms, index=False)
    else:
        stacked(runs, snakemake.input.tables).to_csv(output.table, index=False)
        if "histograms" in output.keys():
            stacked(runs, snakemake.input.histograms).to_csv(output.histograms, index=False)
