"""relaygraph.cli."""
