"""The service files in deploy/: systemd units that systemd-analyze accepts without a warning, a scrape
config and alerting rules that promtool accepts, rules that fire on the series they are for (promtool's
own rule tests), and everything naming flags, ports and metrics that really exist."""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

import consumer
import monitor
import producer
from conftest import PROJECT_DIR
from ingest.metrics import ConsumerMetrics
from polling.metrics import ProducerMetrics

DEPLOY = PROJECT_DIR / "deploy"
UNITS = {"producer": DEPLOY / "systemd" / "stockmon-producer.service",
         "consumer": DEPLOY / "systemd" / "stockmon-consumer.service",
         "web": DEPLOY / "systemd" / "stockmon-web.service"}
SCRIPTS = {"producer": producer, "consumer": consumer, "web": monitor}
PROMETHEUS = DEPLOY / "prometheus"


def exec_start(unit: Path) -> list[str]:
    [line] = [line for line in unit.read_text().splitlines() if line.startswith("ExecStart=")]
    return shlex.split(line.removeprefix("ExecStart="))


def needs(command: str) -> str:
    found = shutil.which(command)
    if found is None:
        pytest.skip(f"{command} is not installed here")
    return found


@pytest.mark.parametrize("name", sorted(UNITS))
def test_systemd_accepts_the_unit_without_a_warning(name: str, tmp_path: Path) -> None:
    analyze = needs("systemd-analyze")
    # As installed: the checkout in /opt/stockmon, here the one under test (its .venv is what runs the tests).
    unit = tmp_path / UNITS[name].name
    unit.write_text(UNITS[name].read_text().replace("/opt/stockmon", str(PROJECT_DIR)))
    checked = subprocess.run([analyze, "verify", str(unit)], capture_output=True, text=True, check=False)
    assert (checked.returncode, checked.stdout + checked.stderr) == (0, "")


@pytest.mark.parametrize("name", sorted(UNITS))
def test_the_unit_runs_the_script_with_flags_it_accepts_and_a_restart_policy(name: str) -> None:
    text = UNITS[name].read_text()
    python, script, *args = exec_start(UNITS[name])
    assert (python, script) == ("/opt/stockmon/.venv/bin/python", f"/opt/stockmon/{SCRIPTS[name].__name__}.py")
    parsed = SCRIPTS[name].build_parser().parse_args(args)
    assert parsed.env_file == "/etc/stockmon/stockmon.env"
    assert "Restart=on-failure" in text and "RestartPreventExitStatus=2 3" in text
    assert "User=stockmon" in text and "WorkingDirectory=/var/lib/stockmon" in text


def listen_port(name: str) -> str:
    args = exec_start(UNITS[name])
    return args[args.index("--metrics-address") + 1]


def test_the_scrape_config_is_valid_and_scrapes_the_units_addresses(tmp_path: Path) -> None:
    config = (PROMETHEUS / "prometheus.yml").read_text()
    assert f'targets: ["{listen_port("producer")}"]' in config
    assert f'targets: ["{listen_port("consumer")}"]' in config
    promtool = needs("promtool")
    for path in PROMETHEUS.iterdir():
        shutil.copy(path, tmp_path)
    checked = subprocess.run([promtool, "check", "config", "prometheus.yml"], cwd=tmp_path, capture_output=True,
                             text=True, check=False)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "SUCCESS: 5 rules found" in checked.stdout


def test_the_alerting_rules_fire_on_what_they_are_for() -> None:
    promtool = needs("promtool")
    checked = subprocess.run([promtool, "check", "rules", "stockmon-rules.yml"], cwd=PROMETHEUS,
                             capture_output=True, text=True, check=False)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    tested = subprocess.run([promtool, "test", "rules", "stockmon-rules.test.yml"], cwd=PROMETHEUS,
                            capture_output=True, text=True, check=False)
    assert tested.returncode == 0, tested.stdout + tested.stderr


def test_the_rules_name_only_metrics_the_scripts_export(tmp_path: Path) -> None:
    registry = CollectorRegistry()
    ProducerMetrics(registry)
    ConsumerMetrics(registry, tmp_path / "stocks.db")
    exported = {sample.name for family in registry.collect() for sample in family.samples}
    exported |= {family.name for family in registry.collect()}
    named = set(re.findall(r"\bstockmon_[a-z_]+", (PROMETHEUS / "stockmon-rules.yml").read_text()))
    assert named and named <= exported, named - exported
