"""``relaygraph model ...``: run the bundled local model for other clients.

    relaygraph model serve [--port N] [--host 127.0.0.1]

The server speaks the OpenAI chat-completions protocol (tools, tool_choice, response_format,
streaming); point any OpenAI client at the printed base URL with any API key.
"""

from __future__ import annotations

import signal
import sys

import typer
from relaygraph.providers.local_llm import LocalModelServer, LocalModelUnavailable

model_app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help="The bundled local LLM (SmolLM2-135M-Instruct via llama.cpp) over the OpenAI protocol.",
)


@model_app.command("serve")
def serve(
    port: int | None = typer.Option(
        None, "--port", help="Port to listen on (default: a free one chosen by the OS)."
    ),
    host: str = typer.Option(
        "127.0.0.1", "--host", help="Address to bind; keep loopback unless you mean to share it."
    ),
    n_ctx: int = typer.Option(8192, "--n-ctx", help="Context window in tokens."),
    allow_repeated_calls: bool = typer.Option(
        False,
        "--allow-repeated-calls",
        help="Let the model repeat a tool call identical to one already made in the conversation "
        "(by default such a call is regenerated: final_answer if offered, else another tool or "
        "an unused enum value, so a tiny model makes progress).",
    ),
) -> None:
    """Start the OpenAI-compatible local model server in the foreground (Ctrl-C stops it)."""
    server = LocalModelServer(
        port=port, host=host, n_ctx=n_ctx, avoid_repeated_calls=not allow_repeated_calls
    )
    try:
        base_url = server.start()
    except LocalModelUnavailable as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    except OSError as exc:
        typer.echo(f"error: {exc.strerror or exc}", err=True)
        raise typer.Exit(2) from None

    # SIGTERM (e.g. from a supervisor) should stop the child too, like Ctrl-C does.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    typer.echo(f"model:    {server.model_id}")
    typer.echo(f"base URL: {base_url}")
    typer.echo(f"started in {server.start_seconds:.2f}s; Ctrl-C to stop")
    typer.echo(
        f'try:      curl {base_url}/chat/completions -H "Content-Type: application/json" '
        f'-d \'{{"model": "{server.model_id}", "messages": [{{"role": "user", "content": "Hi"}}]}}\''
    )
    sys.stdout.flush()
    code = 0
    try:
        code = server.wait()
        if code:
            typer.echo(f"error: the model server exited with code {code}:", err=True)
            typer.echo(server.log_tail(), err=True)
    except (KeyboardInterrupt, SystemExit):
        pass
    finally:
        server.stop()
    if code:
        raise typer.Exit(1)
