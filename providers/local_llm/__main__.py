"""Child-process entry point: ``python -m relaygraph.providers.local_llm --fd N ...`` (see server.py).

A separate ``__main__`` (rather than ``-m relaygraph.providers.local_llm.server``) because the package
imports ``server`` itself, and runpy warns when a module it is asked to run is already loaded.
"""

from relaygraph.providers.local_llm.server import child_entry

child_entry()
