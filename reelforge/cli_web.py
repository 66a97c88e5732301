"""``reelforge web`` (the service) and ``reelforge tokens`` (its API tokens)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Annotated

import typer

from reelforge.cli_options import JsonOpt
from reelforge.console import out_console
from reelforge.errors import InputError

DataOpt = Annotated[
    Path, typer.Option("--data", help="The service's data folder (made if missing).")
]


def web(
    data: DataOpt,
    host: Annotated[str, typer.Option("--host", help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", help="Port to listen on.")] = 8000,
    server: Annotated[str, typer.Option("--server", help="granian or uvicorn.")] = "granian",
) -> None:
    """Run the service: the API, uploads, pages and the origin, with an in-process job
    pool. Prints its URL once it listens."""
    from reelforge.delivery.server import SERVERS, check_address
    from reelforge.web import settings as web_settings
    from reelforge.web.app import APP_FACTORY

    if server not in SERVERS:
        raise InputError(f"--server must be one of {', '.join(SERVERS)}, not {server!r}")
    settings = web_settings.load(data, os.environ)  # checks the folder and the settings
    check_address(host, port)
    shown = f"[{host}]" if ":" in host else host
    os.environ["REELFORGE_WEB_DATA"] = str(settings.data)  # for the server's worker process
    os.environ["REELFORGE_WEB_ANNOUNCE"] = (f"ReelForge at http://{shown}:{port}/ "
                                            f"(data: {settings.data})")  # fmt: skip
    if server == "granian":
        from granian import Granian
        from granian.constants import Interfaces

        Granian(APP_FACTORY, address=host, port=port, interface=Interfaces.ASGI, factory=True,
                workers=1, workers_kill_timeout=10, log_level="warning").serve()  # fmt: skip
    else:
        import uvicorn

        uvicorn.run(APP_FACTORY, host=host, port=port, factory=True, log_level="warning")


tokens_app = typer.Typer(help="API tokens of a `reelforge web` data folder.",
                         no_args_is_help=True)  # fmt: skip


def _tokens(data: Path):
    from reelforge.web import settings as web_settings
    from reelforge.web.db import open_database
    from reelforge.web.tokens import TokenStore

    settings = web_settings.load(data, os.environ)
    return TokenStore(open_database(settings.db_path))


@tokens_app.command("create")
def create_token(
    name: Annotated[str, typer.Argument(help="Who or what the token is for.")],
    data: DataOpt,
    scope: Annotated[str, typer.Option("--scope", help="read, upload or admin.")] = "upload",
    webhook: Annotated[
        str | None, typer.Option("--webhook", help="Where this token's videos' events go.")
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Make a token; it is printed once and stored only as a hash."""
    principal, token = _tokens(data).create(name, scope, webhook)
    if as_json:
        print(json.dumps({"id": principal.token_id, "name": principal.name,
                          "scope": principal.scope, "token": token}))  # fmt: skip
        return
    out_console.print(f"{principal.name} ({principal.scope}): {token}", highlight=False)
    out_console.print("Keep it now: it is not shown again.", style="dim")


@tokens_app.command("list")
def list_tokens(data: DataOpt, as_json: JsonOpt = False) -> None:
    """The tokens (never their text)."""
    rows = _tokens(data).list()
    if as_json:
        print(json.dumps(rows, indent=2))
        return
    for r in rows:
        state = "revoked" if r["revoked"] else r["scope"]
        out_console.print(f"{r['id']}  {state:<8} {r['name']}", highlight=False)


@tokens_app.command("revoke")
def revoke_token(
    token_id: Annotated[str, typer.Argument(help="The token's id (from `tokens list`).")],
    data: DataOpt,
    as_json: JsonOpt = False,
) -> None:
    """Revoke a token: its API calls and sessions stop working at once."""
    if not _tokens(data).revoke(token_id):
        raise InputError(f"no token {token_id!r}")
    if as_json:
        print(json.dumps({"id": token_id, "revoked": True}))
    else:
        out_console.print(f"{token_id}: revoked", highlight=False)
