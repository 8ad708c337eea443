"""``seeknal ui``."""

from __future__ import annotations

import click

from seeknal_flow.cli.options import project_option
from seeknal_flow.errors import UiError


def register(cli: click.Group) -> None:
    @cli.command("ui")
    @click.option("--host", default="127.0.0.1", show_default=True,
                  help="Address to bind (loopback by default; any other address needs a token).")
    @click.option("--port", default=8766, show_default=True, type=click.IntRange(0, 65535))
    @click.option("--token", envvar="SEEKNAL_UI_TOKEN", default=None, show_envvar=True,
                  help="Require this token (Authorization: Bearer, or ?token= for the page).")
    @click.option("--open", "open_browser", is_flag=True, help="Open the page in the default browser.")
    @project_option
    def ui(host: str, port: int, token: str | None, open_browser: bool, project_dir: str | None) -> None:
        """Serve a local web UI: the DAG with run status, node details and statistics, entities, runs."""
        import webbrowser
        from pathlib import Path

        from seeknal_flow.load.project import Project
        from seeknal_flow.ui.server import UiServer, check_binding

        check_binding(host, token)
        project = Project.find(Path(project_dir) if project_dir else None)
        try:
            server = UiServer(project, host, port, token)
        except OSError as e:
            raise UiError(f"cannot listen on {host}:{port}: {e.strerror}; pick another --port") from e
        url = f"http://{host}:{server.server_address[1]}/"
        # The token is never printed: the user has it already.
        click.echo(f"Serving the seeknal UI of {project.root.name} on {url} (Ctrl-C to stop)"
                   + (" — open it with ?token=<your token>" if token else ""))
        if open_browser:
            webbrowser.open(url + (f"?token={token}" if token else ""))
        try:
            server.serve_forever()
        except KeyboardInterrupt:
            click.echo("stopped")
        finally:
            server.server_close()
