"""relaygraph nodes package."""
