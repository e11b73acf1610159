# Admit sessions and statements only during business hours in a time zone
# (default Monday–Friday, 09:00–18:00, Europe/Berlin). Members of the
# `on-call` group are exempt.
#   {"config": {"business_hours": {"tz": "America/New_York", "start": 8, "end": 20}}}
package gate.business_hours

import rego.v1

default config := {}

config := data.config.business_hours

tz := object.get(config, "tz", "Europe/Berlin")

start_hour := object.get(config, "start", 9)

end_hour := object.get(config, "end", 18)

workdays := {"Monday", "Tuesday", "Wednesday", "Thursday", "Friday"}

now_ns := input.time.unix_ns

local_hour := time.clock([now_ns, tz])[0]

local_day := time.weekday([now_ns, tz])

open if {
	local_day in workdays
	local_hour >= start_hour
	local_hour < end_hour
}

exempt if "on-call" in object.get(input, ["user", "groups"], [])

decision := {"action": "allow"} if open

decision := {"action": "allow"} if exempt

decision := {
	"action": "block",
	"reason": sprintf("access is only allowed %s–%s %02d:00–%02d:00 %s", ["Monday", "Friday", start_hour, end_hour, tz]),
} if {
	not open
	not exempt
}

session := decision

pre_request := decision
