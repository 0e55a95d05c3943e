"""The clean-tree contract between `sunrgbd` and `segtrain`: both import it, it imports neither."""
