"""The always-on daemon: REST API on the Unix socket, live events, the scheduler, the callback server."""
