"""What input data StyleGAN2 inversion needs: the shared model module of the study workflow."""

__version__ = "0.1.0"
