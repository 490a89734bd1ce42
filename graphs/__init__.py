"""relaygraph graphs package."""
