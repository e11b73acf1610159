# docs/mcp-gateway-quickstart.md: an argument-aware MCP policy. Bots may look
# up customers 1 and 2 only and never delete; what they get back has emails
# and SSNs masked; clients declaring themselves "rogue-agent" call no tool.
package gate.mcp_quickstart

import rego.v1

default session := {"action": "allow"}

default pre_request := {"action": "allow"}

pre_request := {"action": "block", "reason": concat("; ", sort(refusals))} if count(refusals) > 0

refusals contains sprintf("customer %v is off limits", [id]) if {
	input.mcp.tool_name == "customer_lookup"
	id := object.get(input.mcp, ["arguments", "customer_id"], "(none)")
	not id in {1, 2}
}

refusals contains "delete_all needs admins" if {
	input.mcp.tool_name == "delete_all"
	not "admins" in input.user.groups
}

refusals contains sprintf("MCP client %s may not call tools", [input.mcp.client.name]) if {
	input.mcp.client.name == "rogue-agent"
	input.mcp.operation == "tool"
}

default post_request := {"action": "allow"}

post_request := {"action": "mask", "masks": [{"column": "email", "strategy": "email"}, {"column": "ssn", "strategy": "redact"}]} if {
	input.mcp.tool_name == "customer_lookup"
	not "admins" in input.user.groups
}
