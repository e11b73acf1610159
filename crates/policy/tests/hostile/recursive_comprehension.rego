# expect: compile recursion is not allowed: hostile.names -> hostile.names
package hostile
import rego.v1
names contains n if { some n in {m | some m in names} }
pre_request := {"action": "block", "reason": "never"} if count(names) > 0
