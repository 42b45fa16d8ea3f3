"""PyPI's `httpbin` application served on 127.0.0.1 in its own process: prints its port."""

from __future__ import annotations

import warnings

from werkzeug.serving import make_server

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from httpbin import app

if __name__ == "__main__":
    server = make_server("127.0.0.1", 0, app, threaded=True)
    print(server.server_port, flush=True)
    server.serve_forever()
