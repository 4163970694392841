"""The README is the first thing a new user runs: keep it true."""

import re
from pathlib import Path

import click

from digest.cli import cli

README = (Path(__file__).resolve().parent.parent / "README.md").read_text(encoding="utf-8")


def commands(group: click.Group, prefix: str = ""):
    for name, command in sorted(group.commands.items()):
        yield f"{prefix}{name}", command
        if isinstance(command, click.Group):
            yield from commands(command, f"{prefix}{name} ")


def test_readme_starts_with_the_two_commands():
    blocks = re.findall(r"```bash\n(.*?)\n```", README, re.S)
    assert blocks[0] == (
        "python3 -m venv .venv && .venv/bin/pip install . && .venv/bin/digest preview"
    )
    assert blocks[1] == (
        "python3 -m venv .venv && .venv/bin/pip install -e '.[test]' && .venv/bin/pytest"
    )
    assert README.index(blocks[1]) < README.index("## ")


def test_ci_runs_the_readme_commands():
    ci = (Path(__file__).resolve().parent.parent / ".ci" / "run").read_text()
    blocks = re.findall(r"```bash\n(.*?)\n```", README, re.S)
    assert blocks[0] in ci
    assert blocks[1] in ci


def test_every_command_has_help_and_is_in_the_readme():
    for name, command in commands(cli):
        assert command.help, f"digest {name} has no help text"
        assert f"digest {name}" in README, f"digest {name} is not in README.md"


def test_benchmark_lines_run_in_the_development_venv():
    lines = [line for line in README.splitlines() if "benchmarks/bench_" in line]
    assert lines and all(".venv/bin/python benchmarks/" in line for line in lines)
    assert ".venv/bin/pip install\n-e '.[test]'" in README


def test_the_webhook_section_mentions_503_and_403():
    section = README[README.index("**The event webhook.**"):README.index("**`digest sync`**")]
    assert "every request gets 503" in section and "refused with 403" in section
