"""Looking at results: image grids, confusion matrices, right/wrong/uncertain predictions."""
