"""``seeknal serve``."""

from __future__ import annotations

import click

from seeknal_flow.cli.options import project_option
from seeknal_flow.errors import ServeError


def register(cli: click.Group) -> None:
    @cli.command("serve")
    @click.option("--host", default="127.0.0.1", show_default=True,
                  help="Address to bind (loopback by default; any other needs --token).")
    @click.option("--port", default=8765, show_default=True, type=click.IntRange(0, 65535))
    @click.option("--workers", default=1, show_default=True, type=click.IntRange(1, 64),
                  help="Worker processes (each keeps its own in-memory index and metrics).")
    @click.option("--token", envvar="SEEKNAL_SERVE_TOKEN", default=None, show_envvar=True,
                  help="Require 'Authorization: Bearer TOKEN' on every route but /health.")
    @click.option("--flight-port", default=None, type=click.IntRange(0, 65535),
                  help="Also serve Arrow Flight DoExchange on this port.")
    @click.option("--quiet", is_flag=True, help="No access log line per request.")
    @click.option("--timeout", default=10, show_default=True, type=click.IntRange(1, 3600),
                  help="Seconds an idle keep-alive connection is kept open, and a request body may take.")
    @project_option
    def serve(host: str, port: int, workers: int, token: str | None, flight_port: int | None, quiet: bool,
              timeout: int, project_dir: str | None) -> None:
        """Serve online features: POST /features, GET /health /ready /entities /metrics (and Arrow Flight)."""
        import os
        import socket
        from pathlib import Path

        from seeknal_flow.load.project import Project
        from seeknal_flow.serve.app import PROJECT_ENV, QUIET_ENV, TIMEOUT_ENV
        from seeknal_flow.serve.auth import TOKEN_ENV, require_token_off_loopback

        require_token_off_loopback(host, token)
        project = Project.find(Path(project_dir) if project_dir else None)
        project.config  # noqa: B018 -- a bad seeknal_project.yml is reported before listening
        try:
            import uvicorn

            from seeknal_flow.serve.connections import DeadlineHttpToolsProtocol
        except ImportError as e:
            raise ServeError(f"seeknal serve needs {e.name}: pip install 'seeknal-flow[serve]'") from e
        # The workers are separate processes that build their app from the environment.
        os.environ[PROJECT_ENV] = str(project.root)
        os.environ[TIMEOUT_ENV] = str(timeout)
        if token:
            os.environ[TOKEN_ENV] = token
        if quiet:
            os.environ[QUIET_ENV] = "1"
        sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as e:
            raise ServeError(f"cannot listen on {host}:{port}: {e.strerror}; pick another --port") from e
        flight = None
        if flight_port is not None:
            require_token_off_loopback(host, token)
            from seeknal_flow.serve.flight import FeatureFlightServer

            try:
                flight = FeatureFlightServer(project, host, flight_port, token)
            except OSError as e:  # pyarrow raises an OSError subclass when the port is taken
                raise ServeError(f"cannot serve Arrow Flight on {host}:{flight_port}: {str(e).splitlines()[0]}; "
                                 "pick another --flight-port") from e
            click.echo(f"Serving Arrow Flight on grpc://{host}:{flight.port}")
        click.echo(f"Serving online features on http://{host}:{sock.getsockname()[1]} "
                   f"({workers} worker{'s' if workers > 1 else ''}; Ctrl-C to stop)")
        config = uvicorn.Config("seeknal_flow.serve.app:app_from_env", factory=True, workers=workers,
                                access_log=False, log_level="warning", timeout_keep_alive=timeout,
                                loop="auto", http=DeadlineHttpToolsProtocol, lifespan="on")
        server = uvicorn.Server(config)
        try:
            if workers > 1:
                from uvicorn.supervisors import Multiprocess

                Multiprocess(config, sockets=[sock]).run()
            else:
                server.run(sockets=[sock])
        except KeyboardInterrupt:
            pass
        finally:
            if flight is not None:
                flight.shutdown()
            sock.close()
        click.echo("stopped")
