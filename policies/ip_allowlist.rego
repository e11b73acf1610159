# Admit sessions only from client addresses inside allowed CIDR ranges.
# Configure the ranges in the `data` document:
#   {"config": {"ip_allowlist": {"cidrs": ["10.0.0.0/8", "192.168.1.0/24"]}}}
# With no ranges configured, every session is refused (fail closed).
package gate.ip_allowlist

import rego.v1

default cidrs := []

cidrs := data.config.ip_allowlist.cidrs

allowed if {
	some cidr in cidrs
	net.cidr_contains(cidr, input.connection.client_ip)
}

session := {"action": "allow"} if allowed

session := {
	"action": "block",
	"reason": sprintf("client address %s is not in the allowlist", [object.get(input, ["connection", "client_ip"], "unknown")]),
} if not allowed
