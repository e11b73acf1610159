# expect: block conflicting values
package hostile
import rego.v1
default pre_request := {"action": "allow"}
limit := 1 if true
limit := 2 if true
pre_request := {"action": "block", "reason": "guarded"} if limit > 0
