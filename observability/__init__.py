"""relaygraph.observability."""
