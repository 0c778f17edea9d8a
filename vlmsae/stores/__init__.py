"""Embedding stores: the zarr format of one store (`embedding_store`), the naming vocabulary's
zarr group (`vocabulary`), the manifests that verify stores and run folders (`manifest`), and the
builder that turns a source and a model into a store (`build`, one layer up: it needs the
datasets, the models and the embedder). Importing the package imports none of them."""
