"""Camera analytics at the edge (OpenCV)."""
