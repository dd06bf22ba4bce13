"""An upstream MCP server written with the official Python `mcp` SDK, for Tollgate's tests.

Run with `stdio` (the default) or `http PORT` (streamable HTTP at /mcp on 127.0.0.1). Its tools
answer with what they were given, so a test can tell that a call really reached this process.
"""

import sys

from mcp.server.mcpserver import Context, MCPServer
from mcp.types import ToolAnnotations

server = MCPServer("py-upstream")


@server.tool(description="Answers with the text it was given, tagged by this server.")
def shout(text: str) -> str:
    return f"py:{text.upper()}"


@server.tool(name="look-up", description="A tool whose own name holds a hyphen.", annotations=ToolAnnotations(read_only_hint=True))
def look_up(key: str) -> str:
    return f"value-of-{key}"


@server.tool(description="Multiplies two integers.")
def times(a: int, b: int) -> int:
    return a * b


def grown() -> str:
    return "I was added later"


@server.tool(description="Adds the tool `grown` and tells the client its tool list changed.")
async def grow(ctx: Context) -> str:
    server.add_tool(grown, name="grown", description="Appears after `grow` ran.")
    await ctx.session.send_tool_list_changed()
    return "grown"


if __name__ == "__main__":
    if len(sys.argv) >= 3 and sys.argv[1] == "http":
        server.run("streamable-http", host="127.0.0.1", port=int(sys.argv[2]), json_response=True, stateless_http=True)
    else:
        server.run("stdio")
