# The sample policy of the local stack (config/connector.yaml loads it for all
# three stages): everyone may connect, destructive statements are refused, and
# emails and SSNs are masked for everyone outside the `admins` group.
package formal.v2

import rego.v1

default session := {"action": "allow"}

default pre_request := {"action": "allow"}

destructive := {"drop", "truncate"}

pre_request := {"action": "block", "reason": "destructive queries are not allowed"} if {
	input.query.type in destructive
}

post_request := {
	"action": "mask",
	"masks": [
		{"column": "email", "strategy": "partial"},
		{"column": "ssn", "strategy": "redact"},
	],
} if {
	not "admins" in object.get(input, ["user", "groups"], [])
}
