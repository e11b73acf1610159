# expect: block `count` requires array/object/set/string argument
package hostile
import rego.v1
default pre_request := {"action": "allow"}
pre_request := {"action": "block", "reason": "guarded"} if count(5) > 0
