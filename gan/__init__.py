"""DCGAN genre models: frame cache, model, trainer, learning clips and latent walks."""
