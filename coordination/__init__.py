"""relaygraph.coordination."""
