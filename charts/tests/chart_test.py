"""Offline tests of charts/gate: rendered with Helm's own Go engine (PyPI helm-python-sdk, no helm
binary), linted, every manifest validated with kubernetes-validate --strict for the oldest and the
newest Kubernetes we support, snapshots of each values set, values.schema.json refusals, and the
rendered gate-control / gate-connector configuration checked by the binaries themselves.

Run: `make chart-test` (part of `make test`); `make chart-snapshots` rewrites the snapshots."""
import base64
import copy
import glob
import json
import os
import subprocess
import sys
import tempfile
import unittest
from pathlib import Path

import helm_python as helm
import jsonschema
import kubernetes_validate
import yaml

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "charts" / "gate"
SNAPSHOTS = Path(__file__).resolve().parent / "snapshots"
UPDATE = os.environ.get("UPDATE_SNAPSHOTS") == "1"
KUBE_VERSIONS = ["1.29.0", kubernetes_validate.utils.latest_version()]
RELEASE, NAMESPACE = "demo", "gate-system"

# The values sets users install with; each has a snapshot in snapshots/<name>.yaml.
VALUE_SETS = {
    "defaults": {},
    "ha-postgres": {
        "controlPlane": {"replicas": 3, "database": {"dsnSecret": {"name": "gate-db"}},
                         "recording": {"enabled": True, "existingClaim": "gate-recordings", "retention": "168h"}},
        "operator": {"replicas": 2},
    },
    "daemonset": {
        "connector": {
            "daemonset": {"enabled": True},
            "ports": [{"name": "shared", "port": 6432}, {"name": "orders", "port": 15432}],
            "config": {"default_action": "allow", "logging": {"level": "debug", "format": "text"}},
        }
    },
    "monitoring": {
        "connector": {"daemonset": {"enabled": True}},
        "monitoring": {
            "podMonitor": {"enabled": True, "labels": {"release": "prometheus"}},
            "serviceMonitor": {"enabled": True},
            "prometheusRule": {"enabled": True},
            "dashboards": {"enabled": True},
        },
        "networkPolicy": {"enabled": True},
    },
    "injector-off": {"injector": {"enabled": False}, "crds": {"install": False}},
    "cert-manager": {"injector": {"certManager": {"enabled": True}, "failurePolicy": "Ignore"}},
    "one-namespace": {"operator": {"watchNamespace": "apps"}},
}

# Kinds kubernetes-validate has no schema for (other projects' CRDs); checked field by field below.
FOREIGN_KINDS = {
    ("monitoring.coreos.com/v1", "PodMonitor"),
    ("monitoring.coreos.com/v1", "ServiceMonitor"),
    ("monitoring.coreos.com/v1", "PrometheusRule"),
    ("cert-manager.io/v1", "Certificate"),
    ("cert-manager.io/v1", "Issuer"),
}


def render(values, name=RELEASE, namespace=NAMESPACE):
    """(template path, manifest) pairs in template order, empty documents dropped."""
    with helm.Chart.load(str(CHART)) as chart:
        out = chart.render(values, name=name, namespace=namespace)
    docs = []
    for path in sorted(out):
        if path.endswith("NOTES.txt"):
            continue
        for doc in yaml.safe_load_all(out[path]):
            if doc:
                docs.append((path, doc))
    return docs


def notes(values):
    with helm.Chart.load(str(CHART)) as chart:
        return chart.render(values, name=RELEASE, namespace=NAMESPACE)["gate/templates/NOTES.txt"]


def normalized(docs):
    """The render with generated secrets and CA bundles replaced, for snapshots (CRDs left out:
    test_rendered_crds_are_the_generated_ones compares them with crds/)."""
    out = []
    for path, doc in docs:
        if doc["kind"] == "CustomResourceDefinition":
            continue
        doc = copy.deepcopy(doc)
        labels = doc.get("metadata", {}).get("labels", {})
        if doc["kind"] == "Secret" and labels.get("gate.dev/generated") == "true":
            doc["data"] = {k: "<generated>" for k in doc["data"]}
        for hook in doc.get("webhooks", []):
            if "caBundle" in hook["clientConfig"]:
                hook["clientConfig"]["caBundle"] = "<generated>"
        out.append(f"# Source: {path}\n" + yaml.safe_dump(doc, sort_keys=True))
    return "---\n".join(out)


def find(docs, kind, name=None):
    found = [d for _, d in docs if d["kind"] == kind and (name is None or d["metadata"]["name"] == name)]
    if not found:
        raise AssertionError(f"no {kind} {name or ''} rendered")
    return found


def find_optional(docs, kind, name):
    return [d for _, d in docs if d["kind"] == kind and d["metadata"]["name"] == name]


def pod_specs(docs):
    for _, d in docs:
        if d["kind"] in ("Deployment", "DaemonSet"):
            yield d["metadata"]["name"], d["spec"]["template"]["spec"]


def binary(name):
    target = Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target"))
    path = target / "debug" / name
    if not path.exists():
        raise AssertionError(f"{path} is missing: build the workspace first (`cargo build --workspace`)")
    return str(path)


class Render(unittest.TestCase):
    def test_every_values_set_matches_its_snapshot(self):
        SNAPSHOTS.mkdir(exist_ok=True)
        for name, values in VALUE_SETS.items():
            with self.subTest(values=name):
                text = normalized(render(values))
                path = SNAPSHOTS / f"{name}.yaml"
                if UPDATE:
                    path.write_text(text)
                    continue
                self.assertTrue(path.exists(), f"{path} is missing: run `make chart-snapshots`")
                self.assertEqual(
                    path.read_text(), text, f"{name}: the render changed; review it and run `make chart-snapshots`"
                )

    def test_every_manifest_passes_kubernetes_strict_validation(self):
        for name, values in VALUE_SETS.items():
            for path, doc in render(values):
                if (doc["apiVersion"], doc["kind"]) in FOREIGN_KINDS:
                    continue
                for version in KUBE_VERSIONS:
                    with self.subTest(values=name, template=path, kind=doc["kind"], kube=version):
                        try:
                            kubernetes_validate.validate(doc, version, strict=True)
                        except kubernetes_validate.ValidationError as e:
                            self.fail(f"{path}: {doc['kind']} {doc['metadata']['name']}: {e.message} at {list(e.path)}")

    def test_lint_reports_no_warning_or_error(self):
        result = helm.lint(str(CHART))
        self.assertEqual(result["errors"], [])
        serious = [m for m in result["messages"] if m["severity"] > 1]
        self.assertEqual(serious, [], serious)

    def test_rendered_crds_are_the_generated_ones(self):
        rendered = {d["metadata"]["name"]: d for d in find(render({}), "CustomResourceDefinition")}
        files = sorted(glob.glob(str(ROOT / "crds" / "*.gate.dev.yaml")))
        self.assertEqual(len(rendered), len(files))
        for file in files:
            crd = yaml.safe_load(Path(file).read_text())
            got = rendered[crd["metadata"]["name"]]
            self.assertEqual(got["spec"], crd["spec"], file)
            self.assertEqual(got["metadata"]["annotations"]["helm.sh/resource-policy"], "keep")
        self.assertFalse(
            any(d["kind"] == "CustomResourceDefinition" for _, d in render({"crds": {"install": False}}))
        )

    def test_example_custom_resources_fit_the_rendered_crds(self):
        schemas = {}
        for crd in find(render({}), "CustomResourceDefinition"):
            for version in crd["spec"]["versions"]:
                key = (f"{crd['spec']['group']}/{version['name']}", crd["spec"]["names"]["kind"])
                schemas[key] = version["schema"]["openAPIV3Schema"]
        checked = 0
        for file in sorted(glob.glob(str(ROOT / "docs" / "examples" / "k8s" / "*.yaml"))):
            for doc in yaml.safe_load_all(Path(file).read_text()):
                if doc and (doc["apiVersion"], doc["kind"]) in schemas:
                    with self.subTest(file=file, kind=doc["kind"]):
                        jsonschema.validate(doc, schemas[(doc["apiVersion"], doc["kind"])])
                        checked += 1
        self.assertGreaterEqual(checked, 4)
        bad = {"apiVersion": "gate.dev/v1alpha1", "kind": "Resource", "metadata": {"name": "x"},
               "spec": {"protocol": "postgres", "endpoint": {"host": "db", "port": "five"}}}
        with self.assertRaises(jsonschema.ValidationError):
            jsonschema.validate(bad, schemas[("gate.dev/v1alpha1", "Resource")])


class Values(unittest.TestCase):
    def test_schema_file_is_current(self):
        check = subprocess.run([sys.executable, str(Path(__file__).parent / "values_schema.py"), "--check"],
                               capture_output=True, text=True)
        self.assertEqual(check.returncode, 0, check.stderr)

    def test_schema_refuses_unknown_and_mistyped_values_naming_the_key(self):
        cases = [
            ({"controlPlane": {"replicas": "two"}}, "/controlPlane/replicas"),
            ({"controlPlane": {"replicaz": 2}}, "replicaz"),
            ({"injector": {"failurePolicy": "Sometimes"}}, "/injector/failurePolicy"),
            ({"injector": {"operatorCertificate": {"validityHours": 1}}}, "/injector/operatorCertificate/validityHours"),
            ({"connector": {"ports": [{"name": "shared", "port": 70000}]}}, "/connector/ports/0/port"),
            ({"connector": {"config": {"listen_addr": ":1"}}}, "/connector/config"),
            ({"image": {"pullPolicy": "Sometimes"}}, "/image/pullPolicy"),
            ({"monitoring": {"podMonitor": {"interval": "often"}}}, "/monitoring/podMonitor/interval"),
            ({"injector": {"sidecar": {"resources": {"requests": {"gpu": "1"}}}}}, "/injector/sidecar/resources/requests"),
        ]
        with helm.Chart.load(str(CHART)) as chart:
            chart.validate_schema({})
            for values, where in cases:
                with self.subTest(values=values):
                    with self.assertRaises(helm.HelmValuesError) as caught:
                        chart.validate_schema(values)
                    self.assertIn(where, str(caught.exception))
                    with self.assertRaises(helm.HelmError):
                        chart.render(values, name=RELEASE, namespace=NAMESPACE)

    def test_several_control_plane_replicas_need_postgresql(self):
        with self.assertRaises(helm.HelmError) as caught:
            render({"controlPlane": {"replicas": 2}})
        self.assertIn("controlPlane.database.dsnSecret.name", str(caught.exception))
        with self.assertRaises(helm.HelmError) as caught:
            render({"operator": {"enabled": False}})
        self.assertIn("injector.enabled needs operator.enabled", str(caught.exception))


class Shape(unittest.TestCase):
    def test_every_pod_is_non_root_read_only_and_confined(self):
        for name, values in VALUE_SETS.items():
            for workload, spec in pod_specs(render(values)):
                with self.subTest(values=name, workload=workload):
                    pod = spec["securityContext"]
                    self.assertTrue(pod["runAsNonRoot"])
                    self.assertEqual(pod["seccompProfile"]["type"], "RuntimeDefault")
                    for c in spec["containers"]:
                        sc = c["securityContext"]
                        self.assertFalse(sc["allowPrivilegeEscalation"])
                        self.assertTrue(sc["readOnlyRootFilesystem"])
                        self.assertEqual(sc["capabilities"]["drop"], ["ALL"])
                        self.assertIn("limits", c["resources"])
                        self.assertIn("readinessProbe", c)

    def test_operator_rbac_is_exactly_what_it_uses(self):
        docs = render({})
        role = find(docs, "ClusterRole", "demo-gate-operator")[0]
        rules = {(tuple(r["apiGroups"]), tuple(r["resources"])): sorted(r["verbs"]) for r in role["rules"]}
        self.assertEqual(rules, {
            (("gate.dev",), ("resources", "policies", "groups", "accessrequests")): ["get", "list", "patch", "watch"],
            (("gate.dev",), ("resources/status", "policies/status", "groups/status", "accessrequests/status")): ["patch"],
            (("",), ("configmaps",)): ["get"],
            (("events.k8s.io",), ("events",)): ["create", "patch"],
        })
        leader = find(docs, "Role", "demo-gate-operator-leader")[0]
        self.assertEqual(leader["metadata"]["namespace"], NAMESPACE)
        self.assertEqual(leader["rules"], [{"apiGroups": ["coordination.k8s.io"], "resources": ["leases"],
                                            "verbs": ["get", "create", "update"]}])
        # The operator's own webhook certificate: one Secret by name (create cannot be limited to
        # a name) in its namespace, and get/patch of its own MutatingWebhookConfiguration only.
        cert_role = find(docs, "Role", "demo-gate-operator-webhook-cert")[0]
        self.assertEqual(cert_role["metadata"]["namespace"], NAMESPACE)
        self.assertEqual(cert_role["rules"], [
            {"apiGroups": [""], "resources": ["secrets"], "resourceNames": ["demo-gate-operator-webhook-tls"],
             "verbs": ["get", "update"]},
            {"apiGroups": [""], "resources": ["secrets"], "verbs": ["create"]},
        ])
        self.assertEqual(find(docs, "ClusterRole", "demo-gate-operator-webhook-cert")[0]["rules"], [
            {"apiGroups": ["admissionregistration.k8s.io"], "resources": ["mutatingwebhookconfigurations"],
             "resourceNames": [find(docs, "MutatingWebhookConfiguration")[0]["metadata"]["name"]],
             "verbs": ["get", "patch"]},
        ])
        for bound in ("RoleBinding", "ClusterRoleBinding"):
            binding = find(docs, bound, "demo-gate-operator-webhook-cert")[0]
            self.assertEqual(binding["subjects"][0]["name"], "demo-gate-operator")
        for off in ({"injector": {"certManager": {"enabled": True}}}, {"injector": {"enabled": False}}):
            self.assertFalse([d for _, d in render(off) if d["metadata"]["name"].endswith("-webhook-cert")],
                             f"no certificate RBAC with {off}")
        scoped = render({"operator": {"watchNamespace": "apps"}})
        # Watching one namespace needs no cluster-wide rights but the webhook configuration's.
        self.assertEqual([d["metadata"]["name"] for _, d in scoped if d["kind"] == "ClusterRole"],
                         ["demo-gate-operator-webhook-cert"])
        self.assertEqual(find(scoped, "Role", "demo-gate-operator")[0]["metadata"]["namespace"], "apps")
        env = {e["name"]: e for e in dict(pod_specs(scoped))["demo-gate-operator"]["containers"][0]["env"]}
        self.assertEqual(env["GATE_WATCH_NAMESPACE"]["value"], "apps")

    def test_generated_root_key_and_where_the_webhook_certificate_comes_from(self):
        docs = render({})
        secret = find(docs, "Secret", "demo-gate-control")[0]
        key = base64.b64decode(secret["data"]["api-key"]).decode()
        self.assertRegex(key, r"^gate_root_[A-Za-z0-9]{40}$")
        self.assertEqual(secret["metadata"]["annotations"]["helm.sh/resource-policy"], "keep")
        # Without cert-manager the operator issues the webhook certificate (decision 062): the
        # chart renders no Secret and no caBundle (helm upgrade keeps the one the operator patched).
        self.assertFalse(find_optional(docs, "Secret", "demo-gate-operator-webhook-tls"))
        hook = find(docs, "MutatingWebhookConfiguration")[0]
        for webhook in hook["webhooks"]:
            self.assertNotIn("caBundle", webhook["clientConfig"])
            self.assertEqual(webhook["clientConfig"]["service"]["name"], "demo-gate-operator")
        self.assertEqual([w["clientConfig"]["service"]["path"] for w in hook["webhooks"]],
                         ["/mutate", "/mutate-accessrequests"])
        operator = dict(pod_specs(docs))["demo-gate-operator"]
        env = {e["name"]: e.get("value") for e in operator["containers"][0]["env"]}
        self.assertEqual(env["GATE_WEBHOOK_CERT_SECRET"], "demo-gate-operator-webhook-tls")
        self.assertEqual(env["GATE_WEBHOOK_SERVICE"], "demo-gate-operator")
        self.assertEqual(env["GATE_WEBHOOK_CONFIGURATION"], hook["metadata"]["name"])
        self.assertEqual(env["GATE_WEBHOOK_CERT_VALIDITY_HOURS"], "2160")
        self.assertNotIn("GATE_WEBHOOK_CERT_FILE", env)
        self.assertNotIn("volumes", operator, "nothing to mount: the pair is served from memory")
        services = [s for s in find(docs, "Service") if s["metadata"]["name"] == env["GATE_WEBHOOK_SERVICE"]]
        self.assertEqual([p["port"] for p in services[0]["spec"]["ports"] if p["name"] == "webhook"], [443])
        managed = render({"injector": {"certManager": {"enabled": True}}})
        hook = find(managed, "MutatingWebhookConfiguration")[0]
        self.assertEqual(hook["metadata"]["annotations"]["cert-manager.io/inject-ca-from"],
                         "gate-system/demo-gate-operator-webhook")
        cert = find(managed, "Certificate")[0]
        self.assertEqual(cert["spec"]["secretName"], "demo-gate-operator-webhook-tls")
        operator = dict(pod_specs(managed))["demo-gate-operator"]
        env = {e["name"]: e.get("value") for e in operator["containers"][0]["env"]}
        self.assertEqual(env["GATE_WEBHOOK_CERT_FILE"], "/etc/gate/webhook/tls.crt")
        self.assertNotIn("GATE_WEBHOOK_CERT_SECRET", env)
        self.assertEqual(operator["volumes"][0]["secret"]["secretName"], "demo-gate-operator-webhook-tls")

    def test_images_match_the_dockerfile_targets(self):
        dockerfile = (ROOT / "Dockerfile").read_text()
        docs = render({"connector": {"daemonset": {"enabled": True}}, "image": {"tag": "1.2.3"}})
        images = {c["image"] for _, spec in pod_specs(docs) for c in spec["containers"]}
        self.assertEqual(images, {f"ghcr.io/gate-dev/gate-{b}:1.2.3" for b in ("control", "operator", "connector")})
        for binary_name in ("control", "operator", "connector"):
            self.assertIn(f"AS gate-{binary_name}", dockerfile)
        env = {e["name"]: e.get("value") for e in dict(pod_specs(docs))["demo-gate-operator"]["containers"][0]["env"]}
        self.assertEqual(env["GATE_CONNECTOR_IMAGE"], "ghcr.io/gate-dev/gate-connector:1.2.3")
        self.assertEqual(env["GATE_SIDECAR_REQUESTS"], "cpu=50m,memory=64Mi")
        self.assertEqual(env["GATE_SIDECAR_LIMITS"], "memory=256Mi")

    def test_daemonset_service_is_node_local_and_monitors_find_the_ports(self):
        docs = render(VALUE_SETS["monitoring"])
        svc = find(docs, "Service", "demo-gate-connector")[0]
        self.assertEqual(svc["spec"]["internalTrafficPolicy"], "Local")
        ds = dict(pod_specs(docs))["demo-gate-connector"]
        ports = {p["name"] for p in ds["containers"][0]["ports"]}
        pm = find(docs, "PodMonitor")[0]
        self.assertIn(pm["spec"]["podMetricsEndpoints"][0]["port"], ports)
        self.assertEqual(pm["metadata"]["labels"]["release"], "prometheus")
        for sm in find(docs, "ServiceMonitor"):
            target = find(docs, "Service", sm["metadata"]["name"])[0]
            self.assertIn(sm["spec"]["endpoints"][0]["port"], {p["name"] for p in target["spec"]["ports"]})
        rule = find(docs, "PrometheusRule")[0]
        alerts = yaml.safe_load((CHART / "files" / "alerts.yaml").read_text())
        self.assertEqual(rule["spec"]["groups"], alerts["groups"])
        dashboards = find(docs, "ConfigMap", "demo-gate-dashboards")[0]
        self.assertEqual(dashboards["metadata"]["labels"]["grafana_dashboard"], "1")
        for file in glob.glob(str(CHART / "files" / "dashboards" / "*.json")):
            self.assertEqual(json.loads(dashboards["data"][Path(file).name]), json.loads(Path(file).read_text()))

    def test_notes_name_the_secrets_to_create(self):
        text = notes({"connector": {"daemonset": {"enabled": True}}})
        self.assertIn("kubectl -n gate-system create secret generic demo-gate-operator", text)
        self.assertIn("kubectl -n gate-system create secret generic demo-gate-connector", text)
        self.assertIn("gate.dev/injection=enabled", text)


class KindSuite(unittest.TestCase):
    """e2e/kind/run.sh cannot run here (no Docker); it must at least parse and name real files."""

    def test_script_parses_and_applies_files_that_exist(self):
        script = ROOT / "e2e" / "kind" / "run.sh"
        check = subprocess.run(["bash", "-n", str(script)], capture_output=True, text=True)
        self.assertEqual(check.returncode, 0, check.stderr)
        text = script.read_text()
        applied = [word for line in text.splitlines() if "kubectl apply" in line
                   for word in line.split() if word.endswith(".yaml")]
        self.assertGreaterEqual(len(applied), 5, applied)
        for file in applied:
            self.assertTrue((ROOT / file).exists(), f"run.sh applies {file}, which does not exist")
        self.assertTrue((ROOT / "kind.yaml").exists())
        for file in ("apps.yaml", "client.yaml"):
            for doc in yaml.safe_load_all((ROOT / "e2e" / "kind" / file).read_text()):
                if doc["kind"] in ("Namespace", "Secret", "Deployment", "Service", "Pod"):
                    kubernetes_validate.validate(doc, KUBE_VERSIONS[-1], strict=True)
        self.assertIn('helm upgrade --install gate charts/gate', text)


class Binaries(unittest.TestCase):
    """The configuration the chart renders is accepted by the binaries it runs."""

    def test_rendered_control_and_connector_configs_pass_check(self):
        for name in ("defaults", "daemonset", "ha-postgres"):
            docs = render(VALUE_SETS[name])
            with tempfile.TemporaryDirectory() as d:
                for _, doc in docs:
                    if doc["kind"] != "ConfigMap" or "dashboards" in doc["metadata"]["name"]:
                        continue
                    (file_name, text), = doc["data"].items()
                    path = Path(d) / file_name
                    path.write_text(text)
                    program = {"control.yaml": "gate-control", "connector.yaml": "gate-connector"}[file_name]
                    env = dict(os.environ, GATE_API_KEY="chart-test-root-key-0123456789",
                               GATE_CONTROL_TOKEN="chart-test-token", GATE_DB_DSN="")
                    with self.subTest(values=name, config=file_name):
                        run = subprocess.run([binary(program), "--config", str(path), "--check"],
                                             capture_output=True, text=True, env=env)
                        self.assertEqual(run.returncode, 0, f"{file_name}:\n{text}\n{run.stdout}{run.stderr}")


if __name__ == "__main__":
    unittest.main(verbosity=1)
