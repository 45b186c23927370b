"""``compose.yaml`` cannot be started here (no Docker), so it is checked so that it cannot silently rot:
against the Compose specification's JSON Schema (the copy ``check-jsonschema`` ships), and against the
CLI it runs: ``failpath serve``'s options and environment variable, the extras it installs, and a
PostgreSQL URL that names the database, user and port the ``db`` service creates."""

from __future__ import annotations

import json
import re
import shlex
import tomllib
from importlib import resources
from pathlib import Path

import pytest
import typer
import yaml

from failpath.cli import app

ROOT = Path(__file__).resolve().parent.parent
COMPOSE_TEXT = (ROOT / "compose.yaml").read_text()
COMPOSE = yaml.safe_load(COMPOSE_TEXT)
PASSWORD = "pw-from-the-environment"


def _compose_spec() -> dict:
    pytest.importorskip("check_jsonschema", reason="the Compose specification's schema ships in check-jsonschema: pip install check-jsonschema")
    vendor = resources.files("check_jsonschema") / "builtin_schemas" / "vendor" / "compose-spec.json"
    return json.loads(vendor.read_text())


def _interpolated(text: str) -> str:
    """``text`` with Compose's variables as ``docker compose`` fills them from the environment (``$$`` is a ``$``)."""
    values = {"FAILPATH_DB_PASSWORD": PASSWORD, "FAILPATH_SERVE_SECRET": "s" * 40}

    def fill(match: re.Match) -> str:
        name = match.group(1)
        assert name in values, f"compose.yaml uses ${{{name}}}, which its header does not tell how to set"
        return values[name]

    text = re.sub(r"\$\{([A-Z_]+)(?::\?[^}]*)?\}", fill, text)
    return text.replace("$$", "$")


def _serve_command() -> list[str]:
    """The arguments after ``failpath`` in the serve service's command (``sh -c '... && exec failpath serve ...'``)."""
    command = COMPOSE["services"]["serve"]["command"]
    assert command[:2] == ["sh", "-c"]
    script = command[2].replace("$$", "$")
    words = shlex.split(script.split("exec ", 1)[1])
    assert words[0] == "failpath"
    return words[1:]


def _click_command(*names: str):
    command = typer.main.get_command(app)
    for name in names:
        command = command.commands[name]
    return command


def test_compose_yaml_is_valid_under_the_compose_specification():
    from jsonschema import validators

    schema = _compose_spec()
    validator = validators.validator_for(schema)(schema)
    errors = [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(COMPOSE)]
    assert errors == []
    broken = json.loads(json.dumps(COMPOSE))
    broken["services"]["serve"]["ports"] = [{"published": "8765", "targett": 8765}]  # a typo is caught
    assert list(validator.iter_errors(broken))


def test_the_serve_command_parses_with_the_options_failpath_serve_has():
    args = _serve_command()
    assert args[0] == "serve"
    serve = _click_command("serve")
    context = serve.make_context("serve", [a.replace("$FAILPATH_STORE", "postgresql://u@h/d") for a in args[1:]])
    params = context.params
    assert params["host"] == "0.0.0.0"  # inside the container; the host maps it to 127.0.0.1 only
    published = COMPOSE["services"]["serve"]["ports"]
    assert published == [f"127.0.0.1:{params['port']}:{params['port']}"]
    assert args[args.index("--store") + 1] == "$FAILPATH_STORE"


def test_the_secret_and_the_store_come_from_the_environment_the_cli_reads():
    environment = COMPOSE["services"]["serve"]["environment"]
    secret = next(p for p in _click_command("serve").params if p.name == "secret_key")
    assert secret.envvar in environment


def test_the_store_url_names_the_database_the_db_service_creates():
    from psycopg.conninfo import conninfo_to_dict

    from failpath.store.opening import store_location

    filled = yaml.safe_load(_interpolated(COMPOSE_TEXT))
    url = filled["services"]["serve"]["environment"]["FAILPATH_STORE"]
    assert isinstance(store_location(url), str)  # taken as a server's URL, not a file path
    parts = conninfo_to_dict(url)
    db = filled["services"]["db"]
    assert parts["host"] == "db" and "db" in filled["services"]["serve"]["depends_on"]
    assert parts["user"] == db["environment"]["POSTGRES_USER"]
    assert parts["dbname"] == db["environment"]["POSTGRES_DB"]
    assert parts["password"] == db["environment"]["POSTGRES_PASSWORD"] == PASSWORD
    assert parts["port"] == "5432" and db["ports"][0].endswith(":5432")
    health = db["healthcheck"]["test"][-1]
    assert f"-U {parts['user']}" in health and f"-d {parts['dbname']}" in health


def test_the_extras_it_installs_exist_and_the_header_commands_parse():
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    installed = re.search(r'"/src\[([a-z,-]+)\]"', COMPOSE["services"]["serve"]["command"][2]).group(1)
    assert set(installed.split(",")) <= set(extras) and {"postgres", "serve"} <= set(installed.split(","))
    header = re.search(r"exec serve sh -c '(failpath [^']+)'", COMPOSE_TEXT).group(1)
    words = shlex.split(header.replace('"$FAILPATH_STORE"', "postgresql://u@h/d"))
    add = _click_command("serve", "add-reviewer")
    assert add.make_context("add-reviewer", words[3:]).params["name"] == "ana"
    for name in re.findall(r"\$\{([A-Z_]+)", COMPOSE_TEXT):
        assert f"export {name}=" in COMPOSE_TEXT  # every variable it needs, the header tells how to set
