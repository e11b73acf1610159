# expect: limit builtin replace
package hostile
import rego.v1
default pre_request := {"action": "allow"}
s0 := "0123456789abcdef"
s1 := concat("", [s0, s0, s0, s0, s0, s0, s0, s0, s0, s0, s0, s0, s0, s0, s0, s0])
s2 := concat("", [s1, s1, s1, s1, s1, s1, s1, s1, s1, s1, s1, s1, s1, s1, s1, s1])
big := concat("", [s2, s2, s2, s2, s2, s2, s2, s2, s2, s2, s2, s2, s2, s2, s2, s2])
pre_request := {"action": "block", "reason": "guarded"} if count(replace(big, "", big)) > 0
