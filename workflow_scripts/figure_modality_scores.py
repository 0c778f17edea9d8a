from vlmsae.figures.modality import plot_modality_histograms
from vlmsae.tables import atoms_table
from vlmsae.workflow import logged

with logged(snakemake.log[0]):
    title = f"Modality scores: {snakemake.wildcards.dataset} / {snakemake.wildcards.model}"
    plot_modality_histograms(
        atoms_table(snakemake.params.runs, snakemake.input), snakemake.output[0], title
    )
