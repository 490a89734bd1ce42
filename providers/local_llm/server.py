"""Launch llama-cpp-python's OpenAI-compatible server with relaygraph's handler, in a child process.

Why a child process: llama-cpp-python's server keeps its model and settings in module globals
(one app per process), a crash in native code must not take the run down, and a process can
always be stopped. Hygiene rules this module keeps:

* the parent binds the listening socket (port 0 = a free port, chosen by the kernel) and hands
  the file descriptor to the child, so there is no window in which another process can take
  the port, and an explicit ``--port`` that is busy fails immediately with a clear message;
* the child exits when its stdin reaches EOF, i.e. when the parent dies for any reason, so a
  killed run never leaves a server behind;
* :meth:`LocalModelServer.stop` sends SIGTERM, then SIGKILL after a grace period, and is also
  registered with :func:`weakref.finalize` so it runs at interpreter exit.

The child runs ``python -m relaygraph.providers.local_llm --fd N ...``; start it only through
:class:`LocalModelServer`. Its log is an unlinked temporary file the parent keeps open, so
nothing is left on disk whatever happens to either process.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
import weakref
from pathlib import Path
from typing import Any, Self

from relaygraph.providers.local_llm.grammar import DEFAULT_MAX_STRING_CHARS
from relaygraph.providers.local_llm.handler import HANDLER_NAME, RelaygraphChatHandler
from relaygraph.providers.local_llm.model_file import (
    MODEL_ID,
    LocalModelUnavailable,
    find_model_path,
    local_available,
)
from relaygraph.providers.local_llm.normalize import NormalizeRequestsMiddleware

READY_TIMEOUT_S = 120.0
STOP_GRACE_S = 5.0


def default_threads() -> int:
    """Generation threads: half the cores (at least 1, at most 8).

    Measured on the 2-core dev machine: token-by-token generation synchronises threads once per
    operation, so with other jobs on the machine 2 threads were ~10x *slower* than 1 (3 vs 37
    tokens/s with spinning waits) and still slower with passive waits (26 vs 37).
    """
    return max(1, min((os.cpu_count() or 2) // 2, 8))


def default_batch_threads() -> int:
    """Prompt-processing threads: all cores (at most 8).

    Prompt processing is big matrix products, where a second core helps (~110 → ~220 tokens/s
    measured) and contention costs little; it dominates an agent's first call (~2k tokens).
    """
    return max(1, min(os.cpu_count() or 1, 8))


class LocalModelServer:
    """The bundled model behind an OpenAI-compatible HTTP API on a loopback port.

    Use as a context manager, or call :meth:`start`/:meth:`stop`. ``base_url`` (ending in
    ``/v1``) and ``model_id`` are what OpenAI clients need; any API key is accepted.

    ``avoid_repeated_calls`` (default on): a tool call identical to one already in the
    conversation is regenerated without that tool, because a tiny greedy model otherwise
    repeats its first call until the step budget runs out. ``max_string_chars`` bounds every
    generated JSON string so constrained output always terminates.
    """

    def __init__(
        self,
        port: int | None = None,
        host: str = "127.0.0.1",
        n_ctx: int = 4096,
        *,
        model_path: str | os.PathLike[str] | None = None,
        model_id: str = MODEL_ID,
        n_threads: int | None = None,
        n_threads_batch: int | None = None,
        max_string_chars: int = DEFAULT_MAX_STRING_CHARS,
        avoid_repeated_calls: bool = True,
        ready_timeout: float = READY_TIMEOUT_S,
    ) -> None:
        self.host = host
        self.port = port
        self.n_ctx = n_ctx
        self.model_path = Path(model_path) if model_path else None
        self.model_id = model_id
        self.n_threads = n_threads or default_threads()
        self.n_threads_batch = n_threads_batch or default_batch_threads()
        self.max_string_chars = max_string_chars
        self.avoid_repeated_calls = avoid_repeated_calls
        self.ready_timeout = ready_timeout
        #: Seconds from :meth:`start` until the server answered (model load included).
        self.start_seconds: float | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self._log: Any = None  # read handle on the (unlinked) child log
        self._lock = threading.Lock()
        self._finalizer: weakref.finalize | None = None

    # -- public API -------------------------------------------------------------------------
    @property
    def base_url(self) -> str:
        """``http://HOST:PORT/v1``; only meaningful after :meth:`start`."""
        if self.port is None:
            raise RuntimeError("LocalModelServer has no port yet: call start() first")
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}/v1"

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    def start(self) -> str:
        """Start the server (idempotent) and return ``base_url`` once it answers requests."""
        with self._lock:
            if self.running:
                return self.base_url
            ok, reason = local_available()
            if not ok:
                raise LocalModelUnavailable(f"the local model provider is unavailable: {reason}")
            model_path = self.model_path or find_model_path()
            began = time.perf_counter()
            sock = _bind(self.host, self.port or 0)
            self.port = sock.getsockname()[1]
            log_fd, log_path = tempfile.mkstemp(prefix="relaygraph-llm-", suffix=".log")
            self._log = open(log_path, "rb")  # noqa: SIM115 - closed in _stop_locked
            os.unlink(log_path)
            cmd = [
                sys.executable,
                "-P",  # nothing of the working directory on sys.path: no folder shadows a module
                "-m",
                "relaygraph.providers.local_llm",
                "--fd",
                str(sock.fileno()),
                "--host",
                self.host,
                "--port",
                str(self.port),
                "--model-path",
                str(model_path),
                "--model-id",
                self.model_id,
                "--n-ctx",
                str(self.n_ctx),
                "--n-threads",
                str(self.n_threads),
                "--n-threads-batch",
                str(self.n_threads_batch),
                "--max-string-chars",
                str(self.max_string_chars),
            ]
            if not self.avoid_repeated_calls:
                cmd.append("--allow-repeated-calls")
            env = dict(os.environ)  # the child inherits the environment (not a settings read)
            # Sleep instead of spin at OpenMP barriers: spinning threads starve each other
            # (and everything else) on a loaded machine.
            env.setdefault("OMP_WAIT_POLICY", "PASSIVE")
            try:
                with os.fdopen(log_fd, "wb") as log:
                    self._proc = subprocess.Popen(
                        cmd,
                        stdin=subprocess.PIPE,  # EOF = parent gone → child exits
                        stdout=log,
                        stderr=subprocess.STDOUT,
                        pass_fds=(sock.fileno(),),
                        env=env,
                    )
            finally:
                sock.close()  # the child holds its own copy
            self._finalizer = weakref.finalize(self, _terminate, self._proc)
            try:
                self._wait_ready()
            except BaseException:
                self._stop_locked(keep_log=True)
                raise
            self.start_seconds = time.perf_counter() - began
            return self.base_url

    def stop(self) -> None:
        """Stop the server process (idempotent); waits until it has exited."""
        with self._lock:
            self._stop_locked(keep_log=False)

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def __repr__(self) -> str:
        state = f"running pid={self.pid}" if self.running else "stopped"
        return f"LocalModelServer({self.host}:{self.port}, {self.model_id}, {state})"

    def wait(self) -> int:
        """Block until the server process exits (``relaygraph model serve``); its exit code."""
        if self._proc is None:
            raise RuntimeError("server not started")
        return self._proc.wait()

    # -- internals --------------------------------------------------------------------------
    def _wait_ready(self) -> None:
        assert self._proc is not None
        deadline = time.monotonic() + self.ready_timeout
        url = self.base_url + "/models"
        while True:
            code = self._proc.poll()
            if code is not None:
                tail = self.log_tail()
                last = next((ln for ln in reversed(tail.splitlines()) if ln.strip()), "")
                raise RuntimeError(
                    f"the local model server exited with code {code} while starting: {last}\n"
                    f"--- server log (end) ---\n{tail}"
                )
            try:
                with urllib.request.urlopen(url, timeout=2.0) as resp:
                    if resp.status == 200:
                        json.load(resp)
                        return
            except (urllib.error.URLError, ConnectionError, TimeoutError, OSError):
                pass
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"the local model server did not answer {url} within "
                    f"{self.ready_timeout:.0f}s:\n{self.log_tail()}"
                )
            time.sleep(0.05)

    def log_tail(self, chars: int = 4000) -> str:
        """The end of the server's combined stdout/stderr (for error messages)."""
        if self._log is None:
            return "(no server log)"
        self._log.seek(0)
        return self._log.read().decode("utf-8", errors="replace")[-chars:]

    def _stop_locked(self, keep_log: bool) -> None:
        proc, self._proc = self._proc, None
        if self._finalizer is not None:
            self._finalizer.detach()
            self._finalizer = None
        if proc is not None:
            _terminate(proc)
        if self._log is not None and not keep_log:
            self._log.close()
            self._log = None


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise OSError(
            exc.errno,
            f"cannot listen on {host}:{port} ({exc.strerror}); pick another --port, or omit it "
            "to let relaygraph choose a free one",
        ) from exc
    sock.listen(128)
    sock.set_inheritable(True)
    return sock


def _terminate(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM, wait, SIGKILL; closes the stdin pipe too. Safe to call repeatedly."""
    if proc.stdin is not None:
        try:
            proc.stdin.close()
        except OSError:
            pass
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(STOP_GRACE_S)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


# -- the child process ----------------------------------------------------------------------


def build_app(
    model_path: str,
    model_id: str = MODEL_ID,
    n_ctx: int = 4096,
    n_threads: int | None = None,
    n_threads_batch: int | None = None,
    max_string_chars: int = DEFAULT_MAX_STRING_CHARS,
    host: str = "127.0.0.1",
    port: int = 0,
    avoid_repeated_calls: bool = True,
) -> Any:
    """The FastAPI app: llama-cpp-python's server, our chat handler, request normalisation.

    Must run at most once per process (llama-cpp-python keeps the model in module globals).
    """
    # llama-cpp-python is the optional ``local`` extra: imported only in the server process.
    from llama_cpp import llama_chat_format
    from llama_cpp.server.app import create_app
    from llama_cpp.server.settings import ModelSettings, ServerSettings

    llama_chat_format.LlamaChatCompletionHandlerRegistry().register_chat_completion_handler(
        HANDLER_NAME,
        RelaygraphChatHandler(
            max_string_chars=max_string_chars, avoid_repeated_calls=avoid_repeated_calls
        ),
        overwrite=True,
    )
    # model_construct, not the constructor: these are pydantic BaseSettings, which would
    # otherwise pick up unrelated environment variables such as MODEL, PORT or API_KEY.
    model_settings = ModelSettings.model_construct(
        model=str(model_path),
        model_alias=model_id,
        n_ctx=n_ctx,
        n_threads=n_threads or default_threads(),
        n_threads_batch=n_threads_batch or default_batch_threads(),
        chat_format=HANDLER_NAME,
        verbose=False,
    )
    server_settings = ServerSettings.model_construct(
        host=host,
        port=port,
        api_key=None,
        interrupt_requests=False,  # parallel agents must not cancel each other's streams
        disable_ping_events=False,
        root_path="",
    )
    app = create_app(server_settings=server_settings, model_settings=[model_settings])
    app.add_middleware(NormalizeRequestsMiddleware)
    return app


def _exit_when_parent_dies() -> None:
    def watch() -> None:
        # os.read, not sys.stdin: a thread blocked inside a buffered reader aborts interpreter
        # shutdown ("could not acquire lock for <stdin>") when the server exits on its own.
        try:
            while os.read(0, 65536):
                pass
        except OSError:
            pass
        os._exit(0)

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fd", type=int, required=True, help="inherited listening socket")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--model-path", required=True)
    parser.add_argument("--model-id", default=MODEL_ID)
    parser.add_argument("--n-ctx", type=int, default=4096)
    parser.add_argument("--n-threads", type=int, default=None)
    parser.add_argument("--n-threads-batch", type=int, default=None)
    parser.add_argument("--max-string-chars", type=int, default=DEFAULT_MAX_STRING_CHARS)
    parser.add_argument("--allow-repeated-calls", action="store_true")
    args = parser.parse_args(argv)

    _exit_when_parent_dies()
    import uvicorn  # part of the optional ``local`` extra (llama-cpp-python[server])

    sock = socket.socket(fileno=args.fd)
    app = build_app(
        args.model_path,
        model_id=args.model_id,
        n_ctx=args.n_ctx,
        n_threads=args.n_threads,
        n_threads_batch=args.n_threads_batch,
        max_string_chars=args.max_string_chars,
        host=args.host,
        port=args.port,
        avoid_repeated_calls=not args.allow_repeated_calls,
    )
    config = uvicorn.Config(app, log_level="warning", access_log=False, timeout_graceful_shutdown=2)
    uvicorn.Server(config).run(sockets=[sock])


def child_entry() -> None:
    """``python -m relaygraph.providers.local_llm``: run :func:`main`, one-line errors for known failures."""
    try:
        main()
    except LocalModelUnavailable as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)
