# Meant to run as a dry run (rollout: dry_run): reports which writes *would*
# be blocked — UPDATE and DELETE statements without a WHERE clause — without
# enforcing anything. Promote it to active once the audit log shows no false
# positives.
package gate.audit_only

import rego.v1

unbounded_write if {
	input.query.type in {"update", "delete"}
	not regex.match(`(?i)\bwhere\b`, input.query.raw)
}

default pre_request := {"action": "allow"}

pre_request := {
	"action": "block",
	"reason": sprintf("%s without WHERE would touch every row", [upper(input.query.type)]),
} if unbounded_write
