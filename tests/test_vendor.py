"""schema/crds: a schema for every custom resource endpointgen can render, and `vendor-schemas` that refreshes it."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import jsonschema_rs
from click.testing import CliRunner, Result

from generator.check.kubeschemas import VENDORED_DIR
from generator.layout import default_schema_locations as default_locations
from generator.check.vendor import custom_resource_kinds, schema_path
from generator.cli import cli
from generator.render.templates import ALLOWED_KINDS

PROJECT = Path(__file__).resolve().parent.parent


def vendor(root: Path, *args: str) -> Result:
    return CliRunner().invoke(cli, ["--root", str(root), "vendor-schemas", *args], catch_exceptions=False)


def catalog_copy(tmp_path: Path) -> Path:
    """A catalog folder like the datreeio one: the vendored schemas, a kind endpointgen does not render, a LICENSE."""
    catalog = tmp_path / "catalog"
    shutil.copytree(VENDORED_DIR, catalog)
    (catalog / "README.md").unlink()
    (catalog / "example.com").mkdir()
    (catalog / "example.com" / "widget_v1.json").write_text('{"type": "object"}\n')
    return catalog


def test_vendored_folder_is_the_projects_schema_crds() -> None:
    assert VENDORED_DIR == PROJECT / "schema" / "crds"
    assert (VENDORED_DIR / "LICENSE").read_text().startswith("MIT License")


def test_every_custom_resource_endpointgen_renders_has_a_compiling_schema() -> None:
    kinds = custom_resource_kinds()
    assert ("networking.istio.io/v1", "VirtualService") in kinds
    assert all(api != "apps/v1" for api, _ in kinds)  # built-in kinds come from kubernetes-validate
    for api_version, kind in kinds:
        path = schema_path(VENDORED_DIR, api_version, kind)
        assert path.is_file(), f"no vendored schema for {api_version} {kind}: run make crds CATALOG=..."
        jsonschema_rs.validator_for(json.loads(path.read_text()))


def test_schema_crds_holds_only_schemas_of_rendered_kinds() -> None:
    wanted = {schema_path(VENDORED_DIR, api, kind) for api, kind in custom_resource_kinds()}
    assert set(VENDORED_DIR.glob("*/*.json")) == wanted


def test_allowed_kinds_that_are_not_custom_resources_are_core_or_k8s_io_groups() -> None:
    custom = {kind for _, kind in custom_resource_kinds()}
    for kind, api in ALLOWED_KINDS.items():
        group = api.rpartition("/")[0]
        assert (kind in custom) == ("." in group and not group.endswith(".k8s.io")), kind


def test_vendor_schemas_copies_each_kind_byte_for_byte_and_the_licence(tmp_path: Path) -> None:
    catalog = catalog_copy(tmp_path)
    target = tmp_path / "out"
    (target / "old.example.io").mkdir(parents=True)
    (target / "old.example.io" / "gone_v1.json").write_text("{}")
    result = vendor(tmp_path, "--from", str(catalog), "--to", str(target))
    assert result.exit_code == 0, result.output
    written = sorted(p.relative_to(target).as_posix() for p in target.rglob("*.json"))
    assert written == sorted(p.relative_to(VENDORED_DIR).as_posix() for p in VENDORED_DIR.rglob("*.json"))
    for rel in written:
        assert (target / rel).read_bytes() == (VENDORED_DIR / rel).read_bytes()
        assert f"wrote out/{rel}" in result.output  # paths are shown relative to --root
    assert not (target / "old.example.io").exists()  # a kind no longer rendered is removed, folder and all
    assert not (target / "example.com").exists()  # a catalog kind endpointgen does not render is not taken
    assert (target / "LICENSE").read_bytes() == (VENDORED_DIR / "LICENSE").read_bytes()


def test_vendor_schemas_defaults_to_the_repos_schema_crds(tmp_path: Path) -> None:
    catalog = catalog_copy(tmp_path)
    result = vendor(tmp_path, "--from", str(catalog))
    assert result.exit_code == 0, result.output
    assert (tmp_path / "schema" / "crds" / "networking.istio.io" / "virtualservice_v1.json").is_file()
    assert "wrote schema/crds/networking.istio.io/virtualservice_v1.json" in result.output


def test_vendor_schemas_from_a_kubeconform_template(tmp_path: Path) -> None:
    catalog = catalog_copy(tmp_path)
    flat = tmp_path / "flat"
    flat.mkdir()
    for path in catalog.glob("*/*.json"):  # another layout: {group}-{kind}-{version}.json in one folder
        shutil.copyfile(path, flat / f"{path.parent.name}-{path.name.replace('_', '-')}")
    template = f"{flat}/{{{{ .Group }}}}-{{{{ .ResourceKind }}}}-{{{{ .ResourceAPIVersion }}}}.json"
    result = vendor(tmp_path, "--from", template, "--to", str(tmp_path / "out"))
    assert result.exit_code == 0, result.output
    assert len(list((tmp_path / "out").glob("*/*.json"))) == len(custom_resource_kinds())


def test_a_catalog_missing_a_kind_changes_nothing(tmp_path: Path) -> None:
    catalog = catalog_copy(tmp_path)
    (catalog / "security.istio.io" / "peerauthentication_v1.json").unlink()
    target = tmp_path / "out"
    shutil.copytree(VENDORED_DIR, target)
    (target / "networking.istio.io" / "gateway_v1.json").write_text('{"changed": "locally"}')
    before = {p: p.read_bytes() for p in target.rglob("*") if p.is_file()}
    result = CliRunner().invoke(cli, ["--root", str(tmp_path), "vendor-schemas", "--from", str(catalog), "--to",
                                      str(target)])
    assert result.exit_code == 1
    assert "no schema for security.istio.io/v1 PeerAuthentication" in result.stderr
    assert "nothing was written" in result.stderr
    assert {p: p.read_bytes() for p in target.rglob("*") if p.is_file()} == before


def test_validate_without_schema_location_uses_the_vendored_schemas(tmp_path: Path) -> None:
    """A GitOps repo of its own (no schema/crds) still gets the schemas endpointgen ships."""
    assert default_locations(tmp_path) == [str(VENDORED_DIR)]
    assert default_locations(PROJECT) == [str(VENDORED_DIR)]
    (tmp_path / "schema" / "crds").mkdir(parents=True)
    assert default_locations(tmp_path) == [str(tmp_path / "schema" / "crds"), str(VENDORED_DIR)]
