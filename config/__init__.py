"""relaygraph.config."""
