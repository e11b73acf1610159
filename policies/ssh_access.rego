# SSH: who may open a shell, run which commands, use sftp and forward ports (docs/ssh.md).
# Terminals and environment pass; agent forwarding and X11 are refused. A command is allowed
# when a pattern of one of the user's groups matches it whole (`*` matches anything, spaces
# included); with `shell_groups` and `sftp_groups` empty, nobody gets a shell or sftp.
#   {"config": {"ssh_access": {
#     "commands": {"support": ["uptime", "journalctl -u *"], "sre": ["*"]},
#     "shell_groups": ["sre"], "sftp_groups": ["sre"],
#     "forward_targets": ["127.0.0.1:9100"]}}}
package gate.ssh_access

import rego.v1

default settings := {}

settings := data.config.ssh_access

groups := object.get(input, ["user", "groups"], [])

request := object.get(input, ["ssh", "request"], "")

default pre_request := {"action": "allow"}

pre_request := {"action": "block", "reason": sprintf("%s is not allowed for your groups", [what])} if {
	request in {"exec", "shell", "subsystem", "forward_local", "forward_remote", "agent", "x11"}
	not allowed
	what := describe
}

describe := sprintf("command %q", [input.ssh.command]) if request == "exec"

describe := "a shell" if request == "shell"

describe := sprintf("subsystem %s", [input.ssh.subsystem]) if request == "subsystem"

describe := sprintf("forwarding to %s:%d", [input.ssh.forward.host, input.ssh.forward.port]) if {
	startswith(request, "forward_")
}

describe := "agent forwarding" if request == "agent"

describe := "X11 forwarding" if request == "x11"

allowed if {
	request == "exec"
	some group in groups
	some pattern in object.get(object.get(settings, "commands", {}), group, [])
	glob.match(pattern, [], input.ssh.command)
}

allowed if {
	request == "shell"
	some group in groups
	group in object.get(settings, "shell_groups", [])
}

allowed if {
	request == "subsystem"
	input.ssh.subsystem == "sftp"
	some group in groups
	group in object.get(settings, "sftp_groups", [])
}

allowed if {
	startswith(request, "forward_")
	sprintf("%s:%d", [input.ssh.forward.host, input.ssh.forward.port]) in object.get(settings, "forward_targets", [])
}
