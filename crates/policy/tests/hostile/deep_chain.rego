# expect: compile the chain of rules that starts here is 34 deep, over the limit of 32
package hostile
import rego.v1
r00 := r01 + 1
r01 := r02 + 1
r02 := r03 + 1
r03 := r04 + 1
r04 := r05 + 1
r05 := r06 + 1
r06 := r07 + 1
r07 := r08 + 1
r08 := r09 + 1
r09 := r10 + 1
r10 := r11 + 1
r11 := r12 + 1
r12 := r13 + 1
r13 := r14 + 1
r14 := r15 + 1
r15 := r16 + 1
r16 := r17 + 1
r17 := r18 + 1
r18 := r19 + 1
r19 := r20 + 1
r20 := r21 + 1
r21 := r22 + 1
r22 := r23 + 1
r23 := r24 + 1
r24 := r25 + 1
r25 := r26 + 1
r26 := r27 + 1
r27 := r28 + 1
r28 := r29 + 1
r29 := r30 + 1
r30 := r31 + 1
r31 := r32 + 1
r32 := 0
pre_request := {"action": "block", "reason": "guarded"} if r00 > 0
