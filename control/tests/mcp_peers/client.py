"""The official Python MCP SDK as a client of gate-control's /mcp endpoint
(control/tests/mcp.rs): runs the steps named on the command line and prints
one JSON line each.

usage: client.py URL STEP...
  STEP: connect:{"headers": {...}, "mode": "auto"|"legacy"} (a new client for the steps after it:
        HTTP headers such as Authorization and X-Org-ID; auto: 2026-07-28 with fallback,
        legacy: the initialize handshake) | version | tools | call:NAME:JSON
Each output line is {"client": N, "step": STEP, "out": ...}; when a client cannot connect, each
of its steps prints the refusal.
"""
import asyncio
import json
import sys

import httpx2
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.exceptions import MCPError


def emit(client, step, out):
    print(json.dumps({"client": client, "step": step, "out": out}), flush=True)


def failure(e):
    if isinstance(e, MCPError):
        return {"error": e.message, "code": e.code, "data": e.data}
    return {"error": f"{type(e).__name__}: {e}"}


async def run(n, client, steps, done):
    for step in steps:
        try:
            if step == "version":
                out = client.protocol_version
            elif step == "tools":
                result = await client.list_tools()
                out = [t.model_dump(mode="json", by_alias=True, exclude_none=True) for t in result.tools]
            elif step.startswith("call:"):
                _, name, args = step.split(":", 2)
                result = await client.call_tool(name, json.loads(args))
                out = {
                    "isError": result.is_error,
                    "structured": result.structured_content,
                    "text": [c.text for c in result.content if getattr(c, "type", "") == "text"],
                }
            else:
                out = {"unknown step": step}
        except Exception as e:  # the suite asserts on refusals too
            out = failure(e)
        emit(n, step, out)
        done.append(step)


async def session(n, options, steps):
    done = []
    try:
        async with httpx2.AsyncClient(headers=options.get("headers", {}), timeout=20) as http:
            transport = streamable_http_client(URL, http_client=http)
            async with Client(transport, mode=options.get("mode", "auto")) as client:
                await run(n, client, steps, done)
    except BaseException as e:  # a refused connection is a result too
        while getattr(e, "exceptions", None):
            e = e.exceptions[0]
        for step in steps[len(done):]:
            emit(n, step, failure(e))


async def main():
    clients = []
    for step in sys.argv[2:]:
        if step.startswith("connect:"):
            clients.append((json.loads(step[len("connect:"):]), []))
        elif clients:
            clients[-1][1].append(step)
    for n, (options, steps) in enumerate(clients):
        await session(n, options, steps)


URL = sys.argv[1]
asyncio.run(main())
