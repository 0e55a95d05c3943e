"""The raw-format generator behind `sunrgbd sample`."""
