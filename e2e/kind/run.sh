#!/usr/bin/env bash
# The cluster suite (`make e2e-kind`): a kind cluster, Gate's images loaded into it, the chart
# installed, example objects applied, psql through an injected sidecar, an AccessRequest
# approved, status and metrics checked, the cluster deleted. Needs Docker, kind, kubectl and
# helm; none exists on the development machine, so this never runs in `make test`.
# KEEP=1 keeps the cluster for inspection.
set -euo pipefail
cd "$(dirname "$0")/../.."

for tool in docker kind kubectl helm curl jq; do
  command -v "$tool" >/dev/null || { echo "e2e-kind: $tool is required" >&2; exit 1; }
done

CLUSTER=gate
TAG=kind
NS=gate-system
step() { printf '\n== %s\n' "$*"; }
fail() { echo "e2e-kind: FAILED: $*" >&2; exit 1; }
cleanup() {
  [ -n "${PF_PID:-}" ] && kill "$PF_PID" 2>/dev/null || true
  if [ "${KEEP:-0}" != 1 ]; then kind delete cluster --name "$CLUSTER" >/dev/null 2>&1 || true; fi
}
trap cleanup EXIT

step "cluster"
kind get clusters | grep -qx "$CLUSTER" || kind create cluster --config kind.yaml --name "$CLUSTER" --wait 120s

step "images"
make image IMAGE_TAG="$TAG"
for b in control connector operator; do
  kind load docker-image --name "$CLUSTER" "ghcr.io/gate-dev/gate-$b:$TAG"
done

step "helm install"
helm upgrade --install gate charts/gate -n "$NS" --create-namespace \
  --set image.tag="$TAG" --set image.pullPolicy=Never --wait --timeout 5m
kubectl -n "$NS" rollout status deploy/gate-control --timeout=120s

step "organization and keys"
kubectl -n "$NS" port-forward svc/gate-control 18080:8080 >/dev/null 2>&1 &
PF_PID=$!
for _ in $(seq 1 50); do curl -sf localhost:18080/health >/dev/null && break; sleep 0.2; done
ROOT_KEY=$(kubectl -n "$NS" get secret gate-control -o jsonpath='{.data.api-key}' | base64 -d)
api() { curl -sf -H "Authorization: Bearer $ROOT_KEY" -H "Content-Type: application/json" "$@"; }
ORG=$(api -d '{"name":"kind"}' localhost:18080/api/v1/organizations | jq -r .id)
OPERATOR_KEY=$(api -H "X-Org-ID: $ORG" -d '{"name":"operator","role":"editor"}' localhost:18080/api/v1/api-keys | jq -r .secret)
kubectl -n "$NS" create secret generic gate-operator --from-literal=api-key="$OPERATOR_KEY" \
  --dry-run=client -o yaml | kubectl apply -f -
kubectl -n "$NS" rollout restart deploy/gate-operator
kubectl -n "$NS" rollout status deploy/gate-operator --timeout=120s

step "example objects"
# Sidecars register with a connector key, read from a Secret in their own namespace.
CONNECTOR_KEY=$(api -H "X-Org-ID: $ORG" -d '{"name":"sidecars","role":"connector"}' localhost:18080/api/v1/api-keys | jq -r .secret)
kubectl create namespace apps --dry-run=client -o yaml | kubectl apply -f -
kubectl -n apps create secret generic gate-connector-token --from-literal=token="$CONNECTOR_KEY" \
  --dry-run=client -o yaml | kubectl apply -f -
kubectl apply -f e2e/kind/apps.yaml
kubectl -n apps rollout status deploy/orders-db --timeout=180s
kubectl apply -f docs/examples/k8s/resource.yaml -f docs/examples/k8s/policy.yaml -f docs/examples/k8s/group.yaml
# The workload reaches orders-db without a grant here; access requests are exercised below.
kubectl -n apps patch resource.gate.dev/orders-db --type=merge -p '{"spec":{"requireAccessGrant":false}}'
kubectl -n apps wait --for=condition=Ready resource.gate.dev/orders-db --timeout=60s
kubectl -n apps wait --for=condition=Ready policy.gate.dev/no-destructive-ddl --timeout=60s
kubectl -n apps wait --for=condition=Ready policy.gate.dev/psql-client-workload --timeout=60s
api -H "X-Org-ID: $ORG" localhost:18080/api/v1/resources | jq -e '.resources[] | select(.name == "orders-db")' >/dev/null \
  || fail "the Resource did not reach the control plane"

step "psql through the injected sidecar"
# Created after the Resource: the injector mounts the Resource's credentials Secret.
kubectl apply -f e2e/kind/client.yaml
kubectl -n apps wait --for=condition=Ready pod/psql-client --timeout=180s
kubectl -n apps get pod psql-client -o json \
  | jq -e '.spec.volumes[] | select(.secret.secretName == "orders-db-gate")' >/dev/null \
  || fail "the Resource's credentials Secret was not mounted into the sidecar"
[ "$(kubectl -n apps get pod psql-client -o jsonpath='{.metadata.annotations.gate\.dev/injected}')" = true ] \
  || fail "psql-client was not injected"
kubectl -n apps exec psql-client -c psql -- psql -h 127.0.0.1 -p 6432 -U postgres -d orders -Atc 'select 1' | grep -qx 1 \
  || fail "select 1 through the sidecar"
if kubectl -n apps exec psql-client -c psql -- psql -h 127.0.0.1 -p 6432 -U postgres -d orders -c 'drop table if exists x' 2>&1 \
    | grep -q 'destructive DDL is not allowed'; then :; else fail "the Policy did not block DROP"; fi
# The password-less psql was the pod's workload in the audit log.
api -H "X-Org-ID: $ORG" "localhost:18080/api/v1/audit?identity=system:serviceaccount:apps:default&limit=10" \
  | jq -e '.events[] | select(.details.identity_kind == "workload")' >/dev/null \
  || fail "the sidecar did not audit the workload"

step "access request"
kubectl apply -f docs/examples/k8s/accessrequest.yaml
for _ in $(seq 1 50); do
  ID=$(kubectl -n apps get accessrequest.gate.dev/alice-orders-incident-42 -o jsonpath='{.status.controlPlaneId}' 2>/dev/null || true)
  [ -n "$ID" ] && break; sleep 0.2
done
[ -n "$ID" ] || fail "the AccessRequest got no controlPlaneId"
api -H "X-Org-ID: $ORG" -X POST -d '{"approved_by":"kind-suite"}' "localhost:18080/api/v1/access-requests/$ID/approve" >/dev/null
kubectl -n apps wait --for=jsonpath='{.status.phase}'=Approved accessrequest.gate.dev/alice-orders-incident-42 --timeout=30s

step "metrics"
kubectl -n "$NS" port-forward deploy/gate-operator 18081:8081 >/dev/null 2>&1 &
OP_PF=$!
sleep 1
curl -sf localhost:18081/metrics | grep -q 'gate_operator_reconciles_total{kind="Resource"}' || fail "operator metrics"
kill "$OP_PF" 2>/dev/null || true
curl -sf localhost:18080/metrics | grep -q 'gate_control_connectors' || fail "control-plane metrics"

step "passed"
