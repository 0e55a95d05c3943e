"""The `--labels` modes and what each puts in the label images, apart from the pipeline:
`sunrgbd convert --help` lists them without loading cv2 (the pipeline's import)."""

# mode -> dataset.json `label_mode_description`
LABEL_MODES = {
    "auto": "seg.mat names through the mapping tables, the annotation2Dfinal polygons where seg.mat is missing or unusable",
    "seg": "seg.mat names through the mapping tables",
    "polygons": "annotation2Dfinal/index.json polygons, names through the mapping tables",
    "official": "SUNRGBD2Dseg.mat seglabel as stored: SUN RGB-D's own seg37 labels (0 void, 1..37), "
                "nothing remapped, other and computer empty; the labels of published SUN RGB-D results",
    "official-all": "SUNRGBD2Dseg.mat seglabelall (indices into seglistall) through the mapping tables",
}
LABEL_SOURCES = tuple(LABEL_MODES)
