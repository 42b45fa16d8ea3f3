"""Only the daemon's own user may talk to it: the socket is 0600, and each connection's peer uid
is checked as well (SO_PEERCRED), so a socket made readable by mistake still refuses others."""

from __future__ import annotations

import logging
import os
import socket
import struct

from aiohttp import web

from apimd.daemon.errors import Handler, error_response

log = logging.getLogger(__name__)


def peer_uid(request: web.BaseRequest) -> int | None:
    """The uid of the process on the other end of a Unix socket connection."""
    transport = request.transport
    sock = transport.get_extra_info("socket") if transport is not None else None
    if sock is None or sock.family != socket.AF_UNIX:
        return None
    creds = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    _pid, uid, _gid = struct.unpack("3i", creds)
    return int(uid)


@web.middleware
async def same_user_only(request: web.Request, handler: Handler) -> web.StreamResponse:
    uid = peer_uid(request)
    if uid is not None and uid != os.getuid():
        log.warning("refused a connection from uid %d", uid)
        return error_response(403, "forbidden", "this daemon serves only its own user")
    return await handler(request)
