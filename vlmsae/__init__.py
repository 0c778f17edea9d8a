"""vlmsae: sparse autoencoders on the joint embedding spaces of multimodal models."""

__version__ = "0.1.0"
