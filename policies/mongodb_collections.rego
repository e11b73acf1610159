# MongoDB: allow commands only on listed collections, per database.
#   {"config": {"mongodb_collections": {"shop": ["orders", "products"]}}}
# Commands without a collection (hello, ping, listCollections…) are allowed;
# a bulkWrite is judged by every namespace it names (input.query.tables).
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

# bulkWrite across several collections (no single `collection`): every namespace must be listed.
unlisted_namespaces contains ns if {
	some ns in input.query.tables
	parts := split(ns, ".")
	collection := concat(".", array.slice(parts, 1, count(parts)))
	not collection in object.get(data.config.mongodb_collections, parts[0], [])
}

pre_request := {
	"action": "block",
	"reason": sprintf("collections %s are not on the allowlist", [concat(", ", sort(unlisted_namespaces))]),
} if {
	input.resource.protocol == "mongodb"
	not input.query.collection
	count(unlisted_namespaces) > 0
}
