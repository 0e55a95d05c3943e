"""Getting a dataset onto this machine: download the raw subset, pack and fetch clean trees, Hub export."""
