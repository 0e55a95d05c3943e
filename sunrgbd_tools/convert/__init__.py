"""Raw scene to clean sample: the pipeline, polygon rasterising, resizing, verifying a tree."""
