"""Arrow Flight for ``seeknal serve --flight-port``: ``DoExchange`` of key batches for feature batches.

The descriptor is a command ``{"entity": "customer", "features": ["group.feature", ...]}`` (JSON;
``features`` may be omitted for all). The client streams record batches with one column per join
key; for each, the server writes one batch back: the keys, then the features, same rows, same
order, NULL features for unknown keys. With a token, every call needs the header
``authorization: Bearer <token>``.

A client::

    client = pyarrow.flight.connect("grpc://127.0.0.1:8815")
    desc = pyarrow.flight.FlightDescriptor.for_command(b'{"entity": "customer"}')
    writer, reader = client.do_exchange(desc)
    writer.begin(keys.schema); writer.write_table(keys); writer.done_writing(); reader.read_all()
"""

from __future__ import annotations

import json
import threading

import pyarrow as pa
import pyarrow.flight as fl

from seeknal_flow.errors import SeeknalError, StoreUnavailableError
from seeknal_flow.load.project import Project
from seeknal_flow.serve.auth import authorized
from seeknal_flow.serve.index import ServingIndex


class _TokenMiddlewareFactory(fl.ServerMiddlewareFactory):
    def __init__(self, token: str | None) -> None:
        super().__init__()
        self.token = token

    def start_call(self, info, headers):
        values = headers.get("authorization") or [None]
        if not authorized(values[0], self.token):
            raise fl.FlightUnauthenticatedError("missing or wrong token: send 'authorization: Bearer <token>'")
        return None


class FeatureFlightServer(fl.FlightServerBase):
    """The Flight server; it starts listening when built (``serve()`` blocks until shutdown)."""

    def __init__(self, project: Project, host: str, port: int, token: str | None = None) -> None:
        super().__init__(f"grpc://{host}:{port}", middleware={"auth": _TokenMiddlewareFactory(token)})
        self.index = ServingIndex(project)
        self._lock = threading.Lock()  # Flight calls run on gRPC threads; the index is not thread-safe

    def do_exchange(self, context, descriptor, reader, writer):
        try:
            command = json.loads(descriptor.command or b"null")
        except (ValueError, TypeError) as e:
            raise fl.FlightServerError(f"the descriptor command must be JSON like {{\"entity\": ...}}: {e}") from e
        if not isinstance(command, dict) or not isinstance(command.get("entity"), str):
            raise fl.FlightServerError('the descriptor command must be {"entity": "...", "features": [...]}')
        features = command.get("features")
        if features is not None and not (isinstance(features, list) and all(isinstance(f, str) for f in features)):
            raise fl.FlightServerError("'features' must be a list of 'group.feature' strings")
        try:
            with self._lock:
                view = self.index.view(command["entity"])
                columns = view.resolve(features)
            store = view.store
            schema = None
            for chunk in reader:
                batch = chunk.data
                if batch is None:
                    continue
                keys = {name: batch.column(i) for i, name in enumerate(batch.schema.names)}
                with self._lock:  # a reload swaps the store's table; a lookup sees one version
                    table = store.lookup_columns(keys, columns)
                if schema is None:
                    schema = table.schema
                    writer.begin(schema)
                for out in table.cast(schema).to_batches() or [pa.RecordBatch.from_pylist([], schema)]:
                    writer.write_batch(out)
        except StoreUnavailableError as e:
            raise fl.FlightUnavailableError(str(e).splitlines()[0]) from e
        except SeeknalError as e:
            raise fl.FlightServerError(str(e).splitlines()[0]) from e
