# expect: limit exceeded
package hostile
import rego.v1
default pre_request := {"action": "allow"}
pre_request := {"action": "block", "reason": "guarded"} if {
	count([1 | some a in numbers.range(1, 1000); some b in numbers.range(1, 1000)]) > 0
}
