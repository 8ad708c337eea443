"""``seeknal serve``."""

from __future__ import annotations

import click

from seeknal_flow.cli.options import project_option
from seeknal_flow.errors import ServeError


def register(cli: click.Group) -> None:
    @cli.command("serve")
    @click.option("--host", default="127.0.0.1", show_default=True, help="Address to bind (loopback by default).")
    @click.option("--port", default=8765, show_default=True, type=click.IntRange(0, 65535))
    @project_option
    def serve(host: str, port: int, project_dir: str | None) -> None:
        """Serve online features: POST /features, GET /health (JSON)."""
        from pathlib import Path

        from seeknal_flow.load.project import Project
        from seeknal_flow.serve.http import FeatureServer

        project = Project.find(Path(project_dir) if project_dir else None)
        try:
            server = FeatureServer(project, host, port)
        except OSError as e:
            raise ServeError(f"cannot listen on {host}:{port}: {e.strerror}; pick another --port") from e
        click.echo(f"Serving online features on http://{host}:{server.server_address[1]} (Ctrl-C to stop)")
        try:
            server.serve_forever()
        except KeyboardInterrupt:
            click.echo("stopped")
        finally:
            server.server_close()
