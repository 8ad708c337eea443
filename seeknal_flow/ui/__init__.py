"""``seeknal ui``: a local, read-only web UI over a project (server, JSON API, statistics, static page)."""
