"""Serve the dashboard on an already-listening socket (fd in argv), so restarts keep the port."""

from __future__ import annotations

import socket
import sys

import uvicorn

from opto_dashboard.app import create_app

__all__: list[str] = []

if __name__ == "__main__":
    db_path, fd = sys.argv[1], int(sys.argv[2])
    config = uvicorn.Config(create_app(db_path), log_level="warning", lifespan="on", ws_ping_interval=None)
    uvicorn.Server(config).run(sockets=[socket.socket(fileno=fd)])
