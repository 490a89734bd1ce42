"""relaygraph persistence package."""
