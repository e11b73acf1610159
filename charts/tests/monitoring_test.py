"""Dashboards and alerts: every PromQL expression in charts/gate/files/dashboards/*.json and
alerts.yaml parses (`promtool check rules`, the dashboards' as recording rules with Grafana's
variables substituted), the alerts' unit tests pass (`promtool test rules alerts_test.yaml`), and
the dashboards are well-formed Grafana JSON. That every metric they name is in a real scrape of
the binaries is checked by e2e/tests/monitoring.rs and operator/tests/monitoring.rs.

Run: `make chart-test` (part of `make test`)."""
import json
import re
import shutil
import subprocess
import tempfile
import unittest
from pathlib import Path

import yaml

HERE = Path(__file__).resolve().parent
FILES = HERE.parent / "gate" / "files"
# Grafana variables and what promtool sees instead.
VARIABLES = {"$__rate_interval": "5m", "$namespace": ".*", "$resource": ".*", "${datasource}": "prometheus"}


def promtool(*args):
    tool = shutil.which("promtool")
    if tool is None:
        raise AssertionError("promtool is missing: run `make deps` (Debian package prometheus)")
    return subprocess.run([tool, *args], capture_output=True, text=True)


def dashboards():
    return {p.name: json.loads(p.read_text()) for p in sorted((FILES / "dashboards").glob("*.json"))}


def expressions():
    """(where, PromQL with variables substituted) for every dashboard target."""
    for name, board in dashboards().items():
        for panel in board["panels"]:
            for target in panel["targets"]:
                expr = target["expr"]
                for var, value in VARIABLES.items():
                    expr = expr.replace(var, value)
                yield f"{name} panel {panel['id']} ({panel['title']}) {target['refId']}", expr


class Monitoring(unittest.TestCase):
    def test_alert_rules_parse(self):
        run = promtool("check", "rules", str(FILES / "alerts.yaml"))
        self.assertEqual(run.returncode, 0, run.stdout + run.stderr)
        self.assertIn("SUCCESS: 7 rules found", run.stdout)

    def test_alerts_fire_when_they_should_and_not_otherwise(self):
        run = promtool("test", "rules", str(HERE / "alerts_test.yaml"))
        self.assertEqual(run.returncode, 0, run.stdout + run.stderr)

    def test_every_alert_has_a_runbook_section(self):
        runbooks = (HERE.parents[1] / "docs" / "runbooks.md").read_text().lower()
        for rule in yaml.safe_load((FILES / "alerts.yaml").read_text())["groups"][0]["rules"]:
            anchor = rule["annotations"]["runbook_url"].rsplit("#", 1)[1]
            self.assertEqual(anchor, rule["alert"].lower())
            self.assertTrue(f"## {rule['alert'].lower()}" in runbooks, f"docs/runbooks.md has no section {rule['alert']}")

    def test_every_dashboard_expression_parses(self):
        rules = [{"record": f"gate:dashboard_expr_{i}", "expr": expr} for i, (_, expr) in enumerate(expressions())]
        self.assertGreater(len(rules), 20)
        with tempfile.NamedTemporaryFile("w", suffix=".yaml") as f:
            yaml.safe_dump({"groups": [{"name": "dashboards", "rules": rules}]}, f)
            f.flush()
            run = promtool("check", "rules", f.name)
        self.assertEqual(run.returncode, 0, run.stdout + run.stderr)
        self.assertIn(f"SUCCESS: {len(rules)} rules found", run.stdout)

    def test_dashboards_are_well_formed(self):
        for name, board in dashboards().items():
            with self.subTest(dashboard=name):
                self.assertEqual(board["uid"], name.removesuffix(".json"))
                ids = [p["id"] for p in board["panels"]]
                self.assertEqual(len(ids), len(set(ids)))
                variables = {v["name"] for v in board["templating"]["list"]}
                for panel in board["panels"]:
                    self.assertEqual(panel["datasource"]["uid"], "${datasource}")
                    for target in panel["targets"]:
                        for used in re.findall(r"\$(\w+)", target["expr"]):
                            if not used.startswith("__"):
                                self.assertIn(used, variables, f"{panel['title']}: ${used} is not a variable")

    def test_the_connector_dashboard_covers_what_operators_watch(self):
        text = json.dumps(dashboards()["gate-connector.json"])
        for metric in ["gate_request_duration_seconds_bucket", "gate_policy_evaluation_duration_seconds_bucket",
                       "gate_connpool_waiters", "gate_connpool_exhausted_total", "gate_connpool_wait_duration_seconds_bucket",
                       "gate_sessions_total", "gate_audit_events_spooled_total", "gate_audit_events_replayed_total"]:
            self.assertIn(metric, text)


if __name__ == "__main__":
    unittest.main(verbosity=1)
