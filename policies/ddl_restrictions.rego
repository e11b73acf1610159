# Schema changes (CREATE, ALTER, DROP, TRUNCATE, GRANT, REVOKE) only for the
# `dba` group; everything else passes.
package gate.ddl_restrictions

import rego.v1

ddl := {"create", "alter", "drop", "truncate", "grant", "revoke", "rename", "comment"}

default pre_request := {"action": "allow"}

pre_request := {
	"action": "block",
	"reason": sprintf("%s statements are restricted to the dba group", [upper(input.query.type)]),
} if {
	input.query.type in ddl
	not "dba" in object.get(input, ["user", "groups"], [])
}
