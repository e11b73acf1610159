# expect: compile recursion is not allowed: hostile.f -> hostile.f
package hostile
import rego.v1
f(x) := y if { y := f(x) }
pre_request := {"action": "block", "reason": "never"} if f(1)
