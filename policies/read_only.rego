# Read-only access: only statements that cannot change data pass. Anything
# else, including statements the parser could not classify, is refused.
package gate.read_only

import rego.v1

read_only := {
	"select", "show", "explain", "describe", "set", "begin", "start_transaction",
	"commit", "rollback", "savepoint", "release_savepoint", "declare", "fetch",
	"close", "discard", "deallocate", "prepare", "execute", "listen", "unlisten",
	"find", "aggregate", "count", "distinct", "getmore", "killcursors", "hello",
	"ismaster", "ping", "listcollections", "listdatabases", "listindexes",
}

default pre_request := {
	"action": "block",
	"reason": "this resource is read-only",
}

pre_request := {"action": "allow"} if lower(input.query.type) in read_only

pre_request := {"action": "allow"} if lower(object.get(input, ["query", "operation"], "")) in read_only
