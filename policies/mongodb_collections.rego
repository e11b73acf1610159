# MongoDB: allow commands only on listed collections, per database.
#   {"config": {"mongodb_collections": {"shop": ["orders", "products"]}}}
# Commands without a collection (hello, ping, listCollections…) are allowed.
package gate.mongodb_collections

import rego.v1

default allowed_collections := []

allowed_collections := data.config.mongodb_collections[input.query.database]

default pre_request := {"action": "allow"}

pre_request := {
	"action": "block",
	"reason": sprintf("collection %s.%s is not on the allowlist", [input.query.database, input.query.collection]),
} if {
	input.resource.protocol == "mongodb"
	input.query.collection
	not input.query.collection in allowed_collections
}
