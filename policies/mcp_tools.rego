# MCP: which groups may call which tools. Listing and other non-tool methods
# pass; a tool not in the table is refused.
#   {"config": {"mcp_tools": {"customer_lookup": ["support"], "refund": ["finance"]}}}
package gate.mcp_tools

import rego.v1

default tools := {}

tools := data.config.mcp_tools

groups := object.get(input, ["user", "groups"], [])

default pre_request := {"action": "allow"}

pre_request := {
	"action": "block",
	"reason": sprintf("tool %s is not allowed for your groups", [input.mcp.tool_name]),
} if {
	input.mcp.method == "tools/call"
	not tool_allowed
}

tool_allowed if {
	some group in object.get(tools, input.mcp.tool_name, [])
	group in groups
}
