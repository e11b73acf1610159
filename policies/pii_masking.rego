# Mask personal data columns and fields for everyone outside the exempt groups.
# Columns and strategies are configurable; the defaults cover common PII names.
#   {"config": {"pii_masking": {"exempt_groups": ["privacy-officers"], "columns": {"email": "email"},
#               "block_predicates": true}}}
# Masking hides values, not which rows a predicate selects (`where email like 'a%'`):
# with `block_predicates`, statements that filter, join or group on a masked column
# are refused for everyone who is not exempt (load this file for pre_request too).
package gate.pii_masking

import rego.v1

default columns := {
	"email": "email",
	"ssn": "redact",
	"phone": "partial",
	"credit_card": "partial",
	"date_of_birth": "redact",
}

columns := data.config.pii_masking.columns

default exempt_groups := ["privacy-officers"]

exempt_groups := data.config.pii_masking.exempt_groups

exempt if {
	some group in object.get(input, ["user", "groups"], [])
	group in exempt_groups
}

post_request := {
	"action": "mask",
	"masks": [{"column": column, "strategy": strategy} | some column, strategy in columns],
} if not exempt

default block_predicates := false

block_predicates := data.config.pii_masking.block_predicates

pre_request := {
	"action": "block",
	"reason": sprintf("filtering on masked column %s is not allowed", [column]),
} if {
	block_predicates
	not exempt
	some column in object.get(input, ["query", "columns"], [])
	columns[column]
	regex.match(sprintf(`(?is)\b(where|having|on|group\s+by|order\s+by)\b.*\b%s\b`, [column]), object.get(input, ["query", "statement"], ""))
}
