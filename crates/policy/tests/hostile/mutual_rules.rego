# expect: compile recursion is not allowed: hostile.a -> hostile.b -> hostile.a
package hostile
import rego.v1
a if b
b if a
pre_request := {"action": "block", "reason": "never"} if a
