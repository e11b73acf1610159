# expect: block could not parse string as number
package hostile
import rego.v1
default pre_request := {"action": "allow"}
pre_request := {"action": "block", "reason": "guarded"} if to_number("abc") > 0
