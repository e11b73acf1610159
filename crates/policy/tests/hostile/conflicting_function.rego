# expect: block conflicting values
package hostile
import rego.v1
default pre_request := {"action": "allow"}
f(x) := 1 if x > 0
f(x) := 2 if x > 0
pre_request := {"action": "block", "reason": "guarded"} if f(1) > 0
