"""An MCP client for Gate's suites (the official Python SDK): runs the
steps named on the command line against URL and prints one JSON line each.

usage: client.py URL USER:PASSWORD STEP...   (STEP: tools | call:NAME:JSON | read:URI | prompt:NAME)
env: MCP_CLIENT_NAME, MCP_CLIENT_VERSION (its clientInfo), MCP_USER_AGENT, MCP_MODE (auto | legacy)
"""
import asyncio
import base64
import json
import os
import sys

import httpx2
from mcp import Client
from mcp.types import Implementation
from mcp.client.streamable_http import streamable_http_client


def dump(value):
    if hasattr(value, "model_dump"):
        return value.model_dump(mode="json", exclude_none=True)
    return value


async def main():
    url, credentials, steps = sys.argv[1], sys.argv[2], sys.argv[3:]
    headers = {"Authorization": "Basic " + base64.b64encode(credentials.encode()).decode()}
    if "MCP_USER_AGENT" in os.environ:
        headers["User-Agent"] = os.environ["MCP_USER_AGENT"]
    info = None
    if "MCP_CLIENT_NAME" in os.environ:
        info = Implementation(name=os.environ["MCP_CLIENT_NAME"], version=os.environ.get("MCP_CLIENT_VERSION", "0"))
    mode = os.environ.get("MCP_MODE", "auto")
    async with httpx2.AsyncClient(headers=headers, timeout=20) as http:
        async with Client(streamable_http_client(url, http_client=http), client_info=info, mode=mode) as client:
            for step in steps:
                try:
                    if step == "tools":
                        result = await client.list_tools()
                        out = sorted(t.name for t in result.tools)
                    elif step.startswith("call:"):
                        _, name, args = step.split(":", 2)
                        out = dump(await client.call_tool(name, json.loads(args)))
                    elif step.startswith("read:"):
                        out = dump(await client.read_resource(step[5:]))
                    elif step.startswith("prompt:"):
                        out = dump(await client.get_prompt(step[7:], {"name": "Gate"}))
                    else:
                        out = {"unknown step": step}
                except Exception as e:  # the suite asserts on refusals too
                    out = {"error": str(e)}
                print(json.dumps({"step": step, "out": out}), flush=True)


asyncio.run(main())
