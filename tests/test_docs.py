"""The README must match the code: its config loads, every command and field is documented."""

from __future__ import annotations

import re
from pathlib import Path

import typer.main
import yaml

from monitor.agent.registry import AGENT_ENV, REGION_ENV
from monitor.cli import app
from monitor.config.load import parse_config
from monitor.config.model import Config
from monitor.config.types import EmbeddingExpect
from monitor.domain.evidence import Outcome
from monitor.targets import TARGET_KINDS

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()


def test_the_readme_config_example_is_valid() -> None:
    block = re.search(r"## Config reference\s+```yaml\n(.*?)```", README, re.S).group(1)
    config = parse_config(block, env={})
    assert [t.name for t in config.targets] == [
        "minilm-embeddings",
        "gpt2-legacy",
        "llama-chat",
        "hf-token",
        "status-page",
    ]


def test_the_example_file_matches_the_readme_targets() -> None:
    example = parse_config((ROOT / "inferwatch.example.yaml").read_text(), env={})
    block = re.search(r"## Config reference\s+```yaml\n(.*?)```", README, re.S).group(1)
    assert [t.model_dump() for t in example.targets] == [
        t.model_dump() for t in parse_config(block, env={}).targets
    ]


def test_the_several_regions_example_is_valid() -> None:
    """One file for every agent: the database and the region come from the environment, and
    the unit names the variables the agent reads."""
    section = README.split("## Running in several regions", 1)[1]
    block = re.search(r"```yaml\n(.*?)```", section, re.S).group(1)
    url = "postgresql+psycopg://inferwatch@db.example.com/inferwatch"
    config = parse_config(block, env={"INFERWATCH_DATABASE": url, REGION_ENV: "eu"})
    assert config.database == url
    assert config.alerts.dashboard_url == "https://inferwatch-eu.example.com"
    assert [t.name for t in config.targets] == ["llama-chat", "status-page"]
    default = parse_config(block, env={"INFERWATCH_DATABASE": url})
    assert default.alerts.dashboard_url == "https://inferwatch-default.example.com"
    unit = re.search(r"```ini\n(.*?)```", section, re.S).group(1)
    assert f"Environment={AGENT_ENV}=%i" in unit and f"{REGION_ENV}=eu" in unit
    assert "inferwatch run -c " in unit


def test_every_command_is_documented() -> None:
    group = typer.main.get_group(app)
    names = []
    for name, command in group.commands.items():
        subcommands = getattr(command, "commands", None)
        names += [f"{name} {sub}" for sub in subcommands] if subcommands else [name]
    for name in names:
        assert f"`inferwatch {name}" in README, f"inferwatch {name} is not in the README"


def test_every_config_field_is_documented() -> None:
    fields = set(Config.model_fields) - {"source", "secrets"}
    for cls in TARGET_KINDS.values():
        fields |= set(cls.model_fields)
    fields |= set(EmbeddingExpect.model_fields)
    for name in fields:
        documented = (f"`{name}`", f"`defaults.{name}`", f"`{name}.")
        assert any(form in README for form in documented), f"{name} is undocumented"


def test_every_kind_and_outcome_is_documented() -> None:
    for kind in TARGET_KINDS:
        assert f"| `{kind}` |" in README
    for outcome in Outcome:
        assert f"| `{outcome}` |" in README


def test_ci_runs_the_readme_test_command() -> None:
    ci = (ROOT / ".ci/run").read_text()
    assert "make test" in README and "\nmake test" in ci
    assert yaml.safe_load((ROOT / "inferwatch.example.yaml").read_text())["targets"]


def test_every_test_the_reliability_doc_cites_exists() -> None:
    doc = (ROOT / "docs" / "reliability.md").read_text()
    cited = re.findall(r"`(tests/[\w/]+\.py)(?:::(\w+))?`", doc)
    assert len(cited) >= 15
    for path, name in cited:
        assert (ROOT / path).is_file(), path
        if name:
            assert f"def {name}(" in (ROOT / path).read_text(), f"{path}::{name}"


PATH_REF = re.compile(
    r"(?<![\w./-])(\.\./shared/[\w./-]+|shared/[\w./-]+"
    r"|(?:monitor|dashboard|tests|benchmarks|alembic|docs)/[\w/.-]+\.(?:py|md|j2|svg|yaml|ini))"
)


def test_docs_and_docstrings_cite_only_files_that_exist() -> None:
    sources = [
        *ROOT.glob("monitor/**/*.py"),
        *ROOT.glob("dashboard/**/*.py"),
        *ROOT.glob("benchmarks/*.py"),
        *ROOT.glob("docs/*.md"),
        ROOT / "README.md",
    ]
    wrong = []
    for source in sources:
        for ref in PATH_REF.findall(source.read_text()):
            ref = ref.rstrip(".")
            if ref.startswith("shared/"):
                wrong.append(f"{source.relative_to(ROOT)}: {ref} (write ../shared/...)")
            elif not ref.startswith("../") and not (ROOT / ref).exists():
                wrong.append(f"{source.relative_to(ROOT)}: {ref} does not exist")
    assert wrong == []


def test_the_architecture_doc_names_only_modules_that_exist() -> None:
    doc = (ROOT / "docs" / "architecture.md").read_text()
    named = set(re.findall(r"`((?:monitor|dashboard)/[\w/.]*)`", doc))
    assert len(named) >= 20
    for path in named:
        assert (ROOT / path).exists(), path
