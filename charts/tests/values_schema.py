"""Write charts/gate/values.schema.json from values.yaml: every key of values.yaml, typed by its
default, with the constraints below; unknown keys are refused (additionalProperties: false).
`make generate` runs it; `make verify-generated` (and chart_test.py) fail when the file is stale.
Usage: values_schema.py [--check]"""
import json
import sys
from pathlib import Path

import yaml

CHART = Path(__file__).resolve().parent.parent / "gate"

STR_MAP = {"type": "object", "additionalProperties": {"type": "string"}}
FREE_OBJ = {"type": "object"}
FREE_ARR = {"type": "array"}
QTY = {"type": ["string", "number"], "pattern": r"^[0-9]+(\.[0-9]+)?(m|k|Ki|M|Mi|G|Gi|T|Ti)?$"}
RESOURCES = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "requests": {"type": "object", "additionalProperties": QTY},
        "limits": {"type": "object", "additionalProperties": QTY},
    },
}
DURATION = {"type": "string", "pattern": r"^[0-9]+(ms|s|m|h)$"}
PORT = {"type": "integer", "minimum": 1, "maximum": 65535}

OVERRIDES = {
    "image.pullPolicy": {"enum": ["Always", "IfNotPresent", "Never"]},
    "image.registry": {"type": "string", "minLength": 1},
    "imagePullSecrets": {
        "type": "array",
        "items": {"type": "object", "required": ["name"], "properties": {"name": {"type": "string"}}},
    },
    "commonLabels": STR_MAP,
    "controlPlane.replicas": {"type": "integer", "minimum": 1},
    "operator.replicas": {"type": "integer", "minimum": 1},
    "controlPlane.logging.level": {"enum": ["trace", "debug", "info", "warn", "error"]},
    "controlPlane.logging.format": {"enum": ["json", "text"]},
    "controlPlane.service.type": {"enum": ["ClusterIP", "NodePort", "LoadBalancer"]},
    "controlPlane.service.port": PORT,
    "controlPlane.database.maxOpenConns": {"type": "integer", "minimum": 1},
    "controlPlane.database.persistence.size": {"type": "string", "pattern": r"^[0-9]+(Ki|Mi|Gi|Ti)$"},
    "controlPlane.publicUrl": {"type": "string", "pattern": r"^(https?://.+)?$"},
    "operator.resyncSeconds": {"type": "integer", "minimum": 1},
    "injector.failurePolicy": {"enum": ["Fail", "Ignore"]},
    "injector.timeoutSeconds": {"type": "integer", "minimum": 1, "maximum": 30},
    "injector.port": PORT,
    # At least a day: renewal after 2/3 of it, checked every minute.
    "injector.operatorCertificate.validityHours": {"type": "integer", "minimum": 24},
    "injector.namespaceSelector": FREE_OBJ,
    "injector.certManager.issuerRef": {
        "type": "object",
        "additionalProperties": False,
        "properties": {
            "name": {"type": "string"},
            "kind": {"enum": ["Issuer", "ClusterIssuer"]},
            "group": {"type": "string"},
        },
    },
    "connector.ports": {
        "type": "array",
        "minItems": 1,
        "items": {
            "type": "object",
            "additionalProperties": False,
            "required": ["name", "port"],
            "properties": {"name": {"type": "string", "pattern": "^[a-z][a-z0-9-]{0,14}$"}, "port": PORT},
        },
    },
    "connector.healthPort": PORT,
    "connector.config": {
        "type": "object",
        "description": "connector.yaml without listen_addr, health_addr and control_plane (the chart sets them)",
        "not": {
            "anyOf": [
                {"required": ["listen_addr"]},
                {"required": ["health_addr"]},
                {"required": ["control_plane"]},
            ]
        },
    },
    "networkPolicy.controlPlaneFrom": FREE_ARR,
    "podSecurityContext": FREE_OBJ,
    "containerSecurityContext": FREE_OBJ,
    "monitoring.dashboards.labelValue": {"type": "string"},
    "controlPlane.recording.retention": {"type": "string", "pattern": r"^([0-9]+(ms|s|m|h))*$"},
}
OVERRIDES["injector.sidecar.resources"] = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "requests": {"type": "object", "additionalProperties": False, "properties": {"cpu": QTY, "memory": QTY}},
        "limits": {"type": "object", "additionalProperties": False, "properties": {"cpu": QTY, "memory": QTY}},
    },
}
for part in ["controlPlane", "operator", "connector"]:
    OVERRIDES[f"{part}.resources"] = RESOURCES
    OVERRIDES[f"{part}.podAnnotations"] = STR_MAP
    OVERRIDES[f"{part}.nodeSelector"] = STR_MAP
    OVERRIDES[f"{part}.tolerations"] = FREE_ARR
    OVERRIDES[f"{part}.affinity"] = FREE_OBJ
    OVERRIDES[f"{part}.extraEnv"] = {"type": "array", "items": {"type": "object", "required": ["name"]}}
for m in ["podMonitor", "serviceMonitor"]:
    OVERRIDES[f"monitoring.{m}.interval"] = DURATION
for m in ["podMonitor", "serviceMonitor", "prometheusRule"]:
    OVERRIDES[f"monitoring.{m}.labels"] = STR_MAP


def schema(value, path, used):
    if path in OVERRIDES:
        used.add(path)
        return OVERRIDES[path]
    if isinstance(value, bool):
        return {"type": "boolean"}
    if isinstance(value, int):
        return {"type": "integer"}
    if isinstance(value, str):
        return {"type": "string"}
    if isinstance(value, dict):
        return {
            "type": "object",
            "additionalProperties": False,
            "properties": {k: schema(v, f"{path}.{k}" if path else k, used) for k, v in value.items()},
        }
    if isinstance(value, list):
        return {"type": "array"}
    raise SystemExit(f"values_schema.py: no schema for {path} ({type(value).__name__})")


def render() -> str:
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    used = set()
    body = schema(values, "", used)
    stale = sorted(set(OVERRIDES) - used)
    if stale:
        raise SystemExit(f"values_schema.py: constraints for keys values.yaml no longer has: {stale}")
    doc = {"$schema": "http://json-schema.org/draft-07/schema#", "title": "Gate chart values", **body}
    return json.dumps(doc, indent=2) + "\n"


def main() -> int:
    path = CHART / "values.schema.json"
    text = render()
    if "--check" in sys.argv[1:]:
        if not path.exists() or path.read_text() != text:
            print(f"{path} is stale: run `make generate`", file=sys.stderr)
            return 1
        return 0
    path.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
