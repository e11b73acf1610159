# expect: block could not deserialize json
package hostile
import rego.v1
default pre_request := {"action": "allow"}
pre_request := {"action": "block", "reason": "guarded"} if json.unmarshal("{").x
