import pandas as pd

from vlmsae.figures.reconstruction import plot_r2_vs_l0
from vlmsae.workflow import logged

with logged(snakemake.log[0]):
    plot_r2_vs_l0(pd.read_csv(snakemake.input[0]), snakemake.output[0])
