"""An MCP server from the `mcp` package on PyPI (MCPServer, streamable HTTP), behind a bearer
token check, for the MCP tests.

usage: mcp_server.py TOKEN HOST PORT   (serves http://HOST:PORT/mcp; prints "ready" when listening)
"""
import sys

import uvicorn
from mcp.server.mcpserver import MCPServer
from mcp.server.transport_security import TransportSecuritySettings

token, host, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
server = MCPServer("drover-test-tools")


@server.tool()
def add(a: int, b: int) -> str:
    """Add two whole numbers."""
    return str(a + b)


# The server keeps its DNS-rebinding check, told the address it really serves.
app = server.streamable_http_app(
    host=host, transport_security=TransportSecuritySettings(allowed_hosts=[f"{host}:{port}"], allowed_origins=[]))
expected = f"Bearer {token}".encode()


async def guarded(scope, receive, send):
    if scope["type"] == "http" and dict(scope["headers"]).get(b"authorization") != expected:
        await send({"type": "http.response.start", "status": 401,
                    "headers": [(b"content-type", b"text/plain"), (b"www-authenticate", b"Bearer")]})
        await send({"type": "http.response.body", "body": b"a valid bearer token is required\n"})
        return
    await app(scope, receive, send)


class Announcing(uvicorn.Server):
    async def startup(self, sockets=None):
        await super().startup(sockets)
        print("ready", flush=True)


Announcing(uvicorn.Config(guarded, host=host, port=port, log_level="warning", lifespan="on")).run()
