"""Resource package: the CSV tables in this folder ship inside the wheel as sunrgbd_tools.mappings."""
