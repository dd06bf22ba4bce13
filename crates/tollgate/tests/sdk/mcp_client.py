"""Drives Tollgate's /mcp with the official Python `mcp` SDK, as an agent would.

Environment: TOLLGATE_URL (the MCP endpoint), TOLLGATE_KEY (a virtual key), TOLLGATE_HEADERS
(optional JSON object of extra headers), TOLLGATE_CALLS (JSON list of [tool, arguments]),
TOLLGATE_MODE (`auto`, the SDK's default: `server/discover` first; or `legacy`: `initialize`).
Prints one JSON line: the tool names listed, and for each call its error flag and text.
"""

import asyncio
import json
import os

import httpx2
from mcp import Client
from mcp.client.streamable_http import streamable_http_client


async def main() -> None:
    headers = {"Authorization": f"Bearer {os.environ['TOLLGATE_KEY']}"}
    headers.update(json.loads(os.environ.get("TOLLGATE_HEADERS") or "{}"))
    calls = json.loads(os.environ.get("TOLLGATE_CALLS") or "[]")
    http = httpx2.AsyncClient(headers=headers, timeout=httpx2.Timeout(30.0, read=300.0))
    async with http, Client(streamable_http_client(os.environ["TOLLGATE_URL"], http_client=http), mode=os.environ.get("TOLLGATE_MODE") or "auto") as client:
        listed = await client.list_tools()
        tools = [
            {"name": t.name, "read_only": bool(t.annotations and t.annotations.read_only_hint), "schema": t.input_schema}
            for t in listed.tools
        ]
        results = []
        for name, arguments in calls:
            result = await client.call_tool(name, arguments)
            text = "".join(getattr(block, "text", "") for block in result.content)
            results.append({"tool": name, "is_error": bool(result.is_error), "text": text})
        server = client.server_info.name if client.server_info else None
        print(json.dumps({"server": server, "protocol": client.protocol_version, "tools": tools, "calls": results}))


asyncio.run(main())
