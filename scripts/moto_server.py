"""moto_server for the tests, serving one request at a time.

moto's own `moto_server` serves each request on its own thread, and its DynamoDB backend
applies an update as read-modify-write without a lock: under load, two concurrent `ADD`s
or conditional writes on one item can both succeed, which DynamoDB never allows. The
adapters' atomicity tests (concurrent counters, the last owner kept under concurrent
demotions, quota limits) then fail at random. Serving requests one at a time gives moto
DynamoDB's per-item atomicity; the server answers HTTP/1.0, closing each connection, so a
client keeping a connection open cannot hold up the others.

Usage: python moto_server.py HOST PORT
"""

import sys

from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app
from werkzeug.serving import run_simple


def main() -> None:
    host, port = sys.argv[1], int(sys.argv[2])
    app = DomainDispatcherApplication(create_backend_app)
    run_simple(host, port, app, threaded=False, use_reloader=False)


if __name__ == "__main__":
    main()
