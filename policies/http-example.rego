# The sample HTTP policy of the local stack (config/connector.yaml loads it for
# all three stages beside example.rego, whose masks apply to JSON fields too):
# admin endpoints are refused, and people outside `admins` see only active
# customers.
package gate.http_example

import rego.v1

pre_request := {"action": "block", "reason": "admin endpoints are not reachable through Gate"} if {
	input.resource.protocol == "http"
	startswith(input.http.path, "/v1/admin")
}

post_request := {
	"action": "filter",
	"filters": [{"field": "status", "op": "eq", "value": "active"}],
} if {
	input.resource.protocol == "http"
	not "admins" in object.get(input, ["user", "groups"], [])
}
