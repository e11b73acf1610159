# expect: block Cannot divide
package hostile
import rego.v1
default pre_request := {"action": "allow"}
pre_request := {"action": "block", "reason": "deletes guarded"} if {
	input.query.type == "delete"
	1 / 0 > 0
}
