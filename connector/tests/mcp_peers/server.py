"""A real MCP server for Gate's suites (the official Python SDK): tools,
a resource and a prompt, on Streamable HTTP at 127.0.0.1:PORT/mcp.

usage: server.py PORT [json|sse] [stateful|stateless]
"""
import sys

from mcp.server.mcpserver import Context, MCPServer

port = int(sys.argv[1])
json_response = len(sys.argv) > 2 and sys.argv[2] == "json"
stateless = len(sys.argv) > 3 and sys.argv[3] == "stateless"

server = MCPServer("gate-test-tools")

CUSTOMERS = {
    1: {"id": 1, "name": "Alice", "email": "alice@example.com", "ssn": "123-45-6789"},
    13: {"id": 13, "name": "Mallory", "email": "mallory@example.com", "ssn": "000-00-0000"},
}


@server.tool()
def customer_lookup(customer_id: int) -> dict:
    """Look a customer up by id."""
    return CUSTOMERS.get(customer_id, {"id": customer_id, "name": "unknown", "email": None})


@server.tool()
def delete_all() -> str:
    """Delete every customer."""
    return "deleted everything"


@server.tool()
async def announce(customer_id: int, ctx: Context) -> dict:
    """Tell the client about a customer: on the GET stream (no related request) and on this call's stream."""
    customer = CUSTOMERS.get(customer_id, {"id": customer_id})
    await ctx.session.send_log_message("info", {"customer": customer}, logger="announce")
    await ctx.log("info", {"customer": customer}, logger_name="call")
    return {"announced": customer_id}


@server.tool()
def echo(text: str) -> str:
    """Say it back."""
    return text


@server.resource("customers://1")
def customer_one() -> str:
    """Customer 1 as JSON."""
    import json

    return json.dumps(CUSTOMERS[1])


@server.prompt()
def greet(name: str) -> str:
    """A greeting."""
    return f"Hello {name}"


server.run(
    transport="streamable-http",
    host="127.0.0.1",
    port=port,
    json_response=json_response,
    stateless_http=stateless,
)
