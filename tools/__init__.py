"""relaygraph tools package."""
