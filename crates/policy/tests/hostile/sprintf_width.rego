# expect: limit builtin sprintf
package hostile
import rego.v1
default pre_request := {"action": "allow"}
pre_request := {"action": "block", "reason": "guarded"} if count(sprintf("%0999999999d", [1])) > 0
