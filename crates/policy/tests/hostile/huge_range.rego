# expect: limit builtin numbers.range would produce 100000001
package hostile
import rego.v1
default pre_request := {"action": "allow"}
pre_request := {"action": "block", "reason": "guarded"} if count(numbers.range(0, 100000000)) > 0
