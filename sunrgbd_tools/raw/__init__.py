"""Reading the raw SUN RGB-D tree: scenes, images, depth, annotations, toolbox .mat files, the split."""
