"""relaygraph runtime package."""
