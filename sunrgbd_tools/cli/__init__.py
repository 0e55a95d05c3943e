"""The `sunrgbd` command: thin click shells over the library."""
