# MCP: which groups may call which tools, which argument values a tool may be
# called with, and which (self-declared) MCP clients may call tools at all.
# Listing and other non-tool methods pass; a tool not in the table is refused.
#   {"config": {
#     "mcp_tools": {"customer_lookup": ["support"], "refund": ["finance"]},
#     "mcp_arguments": {                       # optional, per tool and argument
#       "customer_lookup": {"customer_id": {"allowed": [1, 2, 3]}},
#       "refund": {"currency": {"denied": ["BTC"]}}},
#     "mcp_blocked_clients": ["rogue-agent"]}} # clientInfo names (declared, not verified)
package gate.mcp_tools

import rego.v1

default tools := {}

tools := data.config.mcp_tools

default argument_rules := {}

argument_rules := data.config.mcp_arguments

default blocked_clients := []

blocked_clients := data.config.mcp_blocked_clients

groups := object.get(input, ["user", "groups"], [])

arguments := object.get(input, ["mcp", "arguments"], {})

default pre_request := {"action": "allow"}

pre_request := {"action": "block", "reason": concat("; ", sort(refusals))} if {
	input.mcp.method == "tools/call"
	count(refusals) > 0
}

refusals contains sprintf("tool %s is not allowed for your groups", [input.mcp.tool_name]) if {
	not tool_allowed
}

refusals contains sprintf("%s %v is not allowed for tool %s", [name, value, input.mcp.tool_name]) if {
	some name, rule in object.get(argument_rules, input.mcp.tool_name, {})
	value := arguments[name]
	"allowed" in object.keys(rule)
	not value in rule.allowed
}

refusals contains sprintf("%s %v is not allowed for tool %s", [name, value, input.mcp.tool_name]) if {
	some name, rule in object.get(argument_rules, input.mcp.tool_name, {})
	value := arguments[name]
	value in object.get(rule, "denied", [])
}

refusals contains sprintf("%s needs argument %s", [input.mcp.tool_name, name]) if {
	some name, rule in object.get(argument_rules, input.mcp.tool_name, {})
	"allowed" in object.keys(rule)
	not name in object.keys(arguments)
}

refusals contains sprintf("MCP client %s may not call tools", [input.mcp.client.name]) if {
	input.mcp.client.name in blocked_clients
}

tool_allowed if {
	some group in object.get(tools, input.mcp.tool_name, [])
	group in groups
}
