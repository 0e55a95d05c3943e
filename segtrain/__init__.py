"""segtrain: train, evaluate and predict segmentation models on Cityscapes-style trees."""

__version__ = "0.1.0"
