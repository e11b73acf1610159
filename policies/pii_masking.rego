# Mask personal data columns and fields for everyone outside the exempt groups.
# Columns and strategies are configurable; the defaults cover common PII names.
#   {"config": {"pii_masking": {"exempt_groups": ["privacy-officers"], "columns": {"email": "email"}}}}
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
