"""``fedsynth serve``: the web app (upload, metadata, runs, reports, downloads) in a browser.

Registered on the app by :mod:`fedsynth.cli.app` (``app.command("serve")(serve)``).
"""

from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import Annotated

import typer

from fedsynth.cli.progress import console, error_console


def serve(
    host: Annotated[
        str,
        typer.Option(help="Address to listen on; the default is reachable from this machine only."),
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535, help="Port to listen on.")] = 8000,
    data_dir: Annotated[
        Path,
        typer.Option(
            "--data-dir",
            help="Folder of the database, the uploads, the run artifacts and the keys.",
        ),
    ] = Path("fedsynth-data"),
    workers: Annotated[
        int, typer.Option(min=1, help="Runs computed at the same time (one process each).")
    ] = 1,
    max_upload_mb: Annotated[
        float, typer.Option(min=0.001, help="Largest uploaded file, in megabytes.")
    ] = 200.0,
    max_queued_runs: Annotated[
        int, typer.Option(min=1, help="Runs one user may have waiting in the queue (then 429).")
    ] = 10,
    max_run_rows: Annotated[
        int, typer.Option(min=1, help="Synthetic rows one run may ask for (then 422).")
    ] = 1_000_000,
) -> None:
    """Start the web app: upload a table, check its metadata, run generators (central or
    federated), read the SAFE report, approve and download signed releases, from a browser.
    Prints the address and, at set-up (first start on an empty data directory), the first
    account (a data steward) with its password and its API token."""
    import uvicorn

    from fedsynth.web import WebSettings, create_app

    settings = WebSettings(
        data_dir=data_dir,
        workers=workers,
        max_upload_mb=max_upload_mb,
        max_queued_runs=max_queued_runs,
        max_run_rows=max_run_rows,
    )
    app = create_app(settings)
    shown_host = f"[{host}]" if ":" in host else host
    console.print(f"fedsynth web app: [bold]http://{shown_host}:{port}/[/]", soft_wrap=True)
    if app.state.first_password is not None:
        console.print(
            f"first account: [bold]admin[/], password: [bold]{app.state.first_password}[/] "
            "(shown once: change it on the Accounts page)",
            soft_wrap=True,
        )
        console.print(
            f"API token of admin: [bold]{app.state.setup_token}[/] (also in the file "
            "access-token of the data directory)",
            soft_wrap=True,
        )
    console.print(f"data directory: {data_dir.resolve()}", soft_wrap=True)
    if not _is_loopback(host):
        error_console.print(
            f"warning: listening on {host}, reachable from the network; the traffic is not "
            "encrypted, so put the app behind an HTTPS reverse proxy",
            style="yellow",
            soft_wrap=True,
        )
    uvicorn.run(app, host=host, port=port, log_level="warning", server_header=False)


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
