# expect: limit over the limit of 16777216
package hostile
import rego.v1
default pre_request := {"action": "allow"}
s0 := "0123456789abcdef"
s1 := concat("", [s0, s0, s0, s0, s0, s0, s0, s0, s0, s0, s0, s0, s0, s0, s0, s0])
s2 := concat("", [s1, s1, s1, s1, s1, s1, s1, s1, s1, s1, s1, s1, s1, s1, s1, s1])
s3 := concat("", [s2, s2, s2, s2])
big := concat("", [s3, s3, s3, s3, s3, s3, s3, s3, s3, s3, s3, s3, s3, s3, s3, s3])
copies := [concat("", [big, sprintf("%d", [i])]) | some i in numbers.range(1, 100)]
pre_request := {"action": "block", "reason": "guarded"} if count(copies) > 0
