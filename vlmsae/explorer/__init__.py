"""The offline concept explorer: one static page per store, opened from disk.

`build_explorer` writes results/explorer/{dataset}/{model}/: index.html, the page's scripts and
style (assets/, shipped in this package: no CDN, no build step), and data files that assign to
globals (`data/store.js`, one `runs/*.js` per run, loaded on demand with a <script> tag), since
browsers refuse fetch() of local files. `atom_map` gives the 2-D coordinates of a dictionary's
atoms (UMAP of the decoder rows, PCA for dictionaries too small for UMAP).
"""

from vlmsae.explorer.atom_map import atom_map
from vlmsae.explorer.build import RunFiles, build_explorer

__all__ = ["RunFiles", "atom_map", "build_explorer"]
