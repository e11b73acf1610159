# expect: compile brackets nested deeper than the limit of 12
package hostile
import rego.v1
pre_request := {"action": "allow"} if { x := [[[[[[[[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]]]]]]]; count(x) > 0 }
