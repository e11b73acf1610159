# expect: compile recursion is not allowed: hostile.g -> hostile.h -> hostile.g
package hostile
import rego.v1
g(x) := data.hostile.h(x)
h(x) := g(x) if x > 0
pre_request := {"action": "block", "reason": "never"} if g(1)
