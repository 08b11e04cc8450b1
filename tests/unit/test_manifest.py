"""plugin.json against Mattermost's manifest rules, and code, docs and manifest agreeing."""
from __future__ import annotations

import ast
import copy
import importlib.metadata
import json
import re
import tomllib
from pathlib import Path

import jsonschema
import pytest

import plugin
from plugin import settings as settings_module
from plugin.settings import MANIFEST_PATH, RESTART_REQUIRED, env_name, load_manifest

ROOT = MANIFEST_PATH.parent
SCHEMA = json.loads((ROOT / "plugin" / "manifest.schema.json").read_text())


def validator() -> jsonschema.Draft202012Validator:
    return jsonschema.Draft202012Validator(SCHEMA)


def test_manifest_schema_is_itself_a_valid_json_schema():
    jsonschema.Draft202012Validator.check_schema(SCHEMA)


def test_plugin_json_is_valid_against_the_manifest_schema():
    errors = [f"{list(e.path)}: {e.message}" for e in validator().iter_errors(load_manifest())]
    assert errors == []


def _with(change):
    manifest = copy.deepcopy(load_manifest())
    change(manifest)
    return manifest


def _first_setting(manifest):
    return manifest["settings_schema"]["settings"][0]


@pytest.mark.parametrize("case, change", [
    ("id too short", lambda m: m.update(id="ab")),
    ("id with a slash", lambda m: m.update(id="com/example")),
    ("id too long", lambda m: m.update(id="a" * 191)),
    ("version not semver", lambda m: m.update(version="1.0")),
    ("min_server_version not semver", lambda m: m.update(min_server_version="v5")),
    ("unknown setting type", lambda m: _first_setting(m).update(type="password")),
    ("options on a text setting", lambda m: _first_setting(m).update(
        options=[{"display_name": "A", "value": "a"}])),
    ("dropdown without options", lambda m: _first_setting(m).update(type="dropdown")),
    ("setting without help_text", lambda m: _first_setting(m).pop("help_text")),
    ("setting without default", lambda m: _first_setting(m).pop("default")),
    ("bool setting with a text default", lambda m: _first_setting(m).update(type="bool", default="yes")),
    ("unknown platform", lambda m: m["server"]["executables"].update({"plan9-386": "server/launch.sh"})),
    ("absolute executable path", lambda m: m["server"]["executables"].update({"linux-amd64": "/bin/sh"})),
    ("webapp path leaving the bundle", lambda m: m["webapp"].update(bundle_path="../main.js")),
    ("unknown top-level field", lambda m: m.update(colour="red")),
])
def test_manifest_schema_rejects(case, change):
    assert list(validator().iter_errors(_with(change))), case


def test_every_setting_key_is_unique_and_maps_to_a_distinct_environment_variable():
    keys = [s["key"] for s in load_manifest()["settings_schema"]["settings"]]
    assert len(keys) == len(set(keys))
    names = [env_name(key) for key in keys]
    assert len(names) == len(set(names))
    assert all(re.fullmatch(r"INCIDENT_[A-Z0-9_]+", name) for name in names)


def test_every_named_path_exists_in_the_project_or_is_built_by_the_bundle():
    manifest = load_manifest()
    assert (ROOT / manifest["webapp"]["bundle_path"]).is_file()
    # The launchers are compiled from server/ by `incident-plugin bundle`, one per platform key.
    assert (ROOT / "server" / "main.go").is_file()
    for platform, path in manifest["server"]["executables"].items():
        assert path == f"server/dist/plugin-{platform}", path


def test_version_is_one_value_in_package_manifest_and_pyproject():
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert "version" in pyproject["project"]["dynamic"]
    assert pyproject["tool"]["setuptools"]["dynamic"]["version"] == {"attr": "plugin.__version__"}
    assert load_manifest()["version"] == plugin.__version__
    assert importlib.metadata.version("incident-response") == plugin.__version__


def _setting_keys_read_by_code(package: Path = ROOT / "plugin") -> set[str]:
    """CamelCase string keys used with .get(...)/[...] on settings objects, plus validator keys."""
    keys: set[str] = set()
    camel = re.compile(r"^[A-Z][a-z0-9]+(?:[A-Z][a-z0-9]*)+$")
    for path in package.rglob("*.py"):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            target, literal = None, None
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.args:
                if node.func.attr in {"get", "register_validator"} and isinstance(node.args[0], ast.Constant):
                    target, literal = node.func.value if node.func.attr == "get" else None, node.args[0].value
                    if node.func.attr == "register_validator":
                        target = node.func
            elif isinstance(node, ast.Subscript) and isinstance(node.slice, ast.Constant):
                target, literal = node.value, node.slice.value
            if target is None or not isinstance(literal, str) or not camel.match(literal):
                continue
            if re.search(r"settings|values|current|register_validator|overrides",
                         ast.unparse(target), re.IGNORECASE):
                keys.add(literal)
    return keys


def test_every_setting_key_the_code_reads_is_declared_in_the_manifest():
    declared = set(settings_module.specs_from_manifest(load_manifest()))
    read = _setting_keys_read_by_code() | set(settings_module.VALIDATORS) | set(RESTART_REQUIRED)
    assert read, "the scan found no setting reads at all"
    assert read - declared == set()


def test_the_setting_scan_finds_reads_of_undeclared_keys(tmp_path):
    (tmp_path / "module.py").write_text(
        "def f(live):\n    return live.current.get('NotDeclared'), live.current.values['AlsoMissing']\n")
    assert _setting_keys_read_by_code(tmp_path) == {"NotDeclared", "AlsoMissing"}


def test_no_module_but_the_package_root_spells_out_the_version():
    # Telemetry's pluginVersion, the manifest check and the packaging all read plugin.__version__.
    for path in (ROOT / "plugin").rglob("*.py"):
        if path == ROOT / "plugin" / "__init__.py":
            continue
        source = path.read_text()
        assert f'"{plugin.__version__}"' not in source and f"'{plugin.__version__}'" not in source, path
        for line in source.splitlines():
            if re.search(r"plugin_?version\W*[:=]\s*['\"]", line, re.IGNORECASE):
                pytest.fail(f"{path}: pluginVersion must come from plugin.__version__: {line.strip()}")


def test_docs_list_every_setting_with_its_environment_variable():
    docs = (ROOT / "docs" / "plugin.md").read_text()
    for entry in load_manifest()["settings_schema"]["settings"]:
        assert f"`{entry['key']}`" in docs, entry["key"]
        assert f"`{env_name(entry['key'])}`" in docs, entry["key"]
