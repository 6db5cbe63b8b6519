"""The documentation stays true: every setting documented everywhere, every cited test and link real."""

from __future__ import annotations

import re

from prometheus_client import CollectorRegistry

from config import DEFAULTS, SETTINGS_HELP
from conftest import PROJECT_DIR, run_script, script_env
from ingest.metrics import ConsumerMetrics
from polling.metrics import ProducerMetrics
from test_layout import PACKAGES

PAGES = [PROJECT_DIR / "README.md", *sorted((PROJECT_DIR / "docs").glob("*.md"))]


def test_every_setting_is_documented_in_env_example_help_and_the_settings_page():
    env_example = (PROJECT_DIR / ".env.example").read_text()
    settings_page = (PROJECT_DIR / "docs" / "settings.md").read_text()
    help_text = run_script("producer.py", "--help", env=script_env(), timeout=30).stdout
    for name, _, _ in SETTINGS_HELP:
        assert f"\n{name}=" in env_example, name
        assert f"`{name}`" in settings_page, name
        assert name in help_text, name
    assert set(DEFAULTS) == {name for name, _, _ in SETTINGS_HELP}


def test_every_test_the_documentation_cites_exists():
    text = "\n".join(page.read_text() for page in PAGES)
    cited = set(re.findall(r"(?:tests/)?((?:\w+/)*test_\w+\.py)::(test_\w+)", text))
    assert len(cited) >= 15
    for file_name, test_name in cited:
        assert f"def {test_name}(" in (PROJECT_DIR / "tests" / file_name).read_text(), (file_name, test_name)
    for file_name in set(re.findall(r"`(?:tests/)?((?:\w+/)*test_\w+\.py)`", text)):
        assert (PROJECT_DIR / "tests" / file_name).is_file(), file_name


def test_every_link_between_the_pages_and_to_a_heading_leads_somewhere():
    def anchors(page_text: str) -> set[str]:
        headings = re.findall(r"^#+ (.+)$", re.sub(r"```.*?```", "", page_text, flags=re.S), re.M)
        return {re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-") for heading in headings}

    for page in PAGES:
        for target, anchor in re.findall(r"\]\(([^)#:\s]*)(?:#([\w-]+))?\)", page.read_text()):
            linked = (page.parent / target).resolve() if target else page
            assert linked.exists(), (page.name, target)
            if anchor:
                assert anchor in anchors(linked.read_text()), (page.name, target, anchor)


def test_the_readme_says_where_each_package_is_and_links_every_page():
    readme = (PROJECT_DIR / "README.md").read_text()
    layout = readme.split("## How the code is laid out", 1)[1].split("\n## ", 1)[0]
    for package in PACKAGES:
        assert f"`{package}/`" in layout, package
    for page in (PROJECT_DIR / "docs").glob("*.md"):
        assert f"(docs/{page.name})" in readme, page.name


def test_the_readme_documents_every_metric_with_its_type_and_labels(tmp_path):
    registry = CollectorRegistry()
    ProducerMetrics(registry)
    ConsumerMetrics(registry, tmp_path / "stocks.db")
    readme = (PROJECT_DIR / "README.md").read_text()
    rows = {match.group(1): match.group(0) for match in re.finditer(r"^\| `(stockmon_\w+)` \|.*$", readme, re.M)}
    documented = set()
    for family in registry.collect():
        name = f"{family.name}_total" if family.type == "counter" else family.name
        assert name in rows, f"{name} is not in the README's metrics table"
        cells = [cell.strip() for cell in rows[name].strip("|").split("|")]
        assert cells[1] == family.type, (name, cells)
        labels = {label for sample in family.samples for label in sample.labels if label != "le"}
        for label in labels:
            assert f"`{label}`" in cells[2], (name, label)
        documented.add(name)
    assert set(rows) == documented  # and nothing documented that is not there
