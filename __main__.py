"""``python -m relaygraph``: the command line (same as the ``relaygraph`` script)."""

from relaygraph.cli.entry import main

if __name__ == "__main__":
    main()
