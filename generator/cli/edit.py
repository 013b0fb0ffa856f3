"""The spec-editing commands, one per AksEndpoint method, and import and serialize (SDK v1 in and out)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from ..layout import select_environments
from ..problems import ProblemsFound, UsageError, display_path
from .base import F, cli, reports_errors

if TYPE_CHECKING:  # the commands import what they need, so that a render with nothing to do starts fast
    from ..edit.changes import Changes


class Number(click.ParamType):
    """A finite number; integral literals stay integers (`1` -> 1, `0.5` -> 0.5)."""

    name = "number"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> int | float:
        if isinstance(value, (int, float)):
            return value
        try:
            return int(value)
        except ValueError:
            pass
        try:
            number = float(value)
        except ValueError:
            self.fail(f"{value!r} is not a number", param, ctx)
        if number != number or number in (float("inf"), float("-inf")):
            self.fail(f"{value!r} is not a finite number", param, ctx)
        return number


NUMBER = Number()
# Version fields that map one to one onto an option: --kebab-case-name, and the value's type.
VERSION_FIELDS: dict[str, Any] = {
    "autoscale_enabled": bool, "autoscale_min_replicas": int, "autoscale_max_replicas": int,
    "autoscale_refresh_seconds": int, "autoscale_target_utilization": int, "collect_model_data": bool,
    "cpu_cores": NUMBER, "memory_gb": NUMBER, "cpu_cores_limit": NUMBER, "memory_gb_limit": NUMBER,
    "gpu_cores": int, "scoring_timeout_ms": int, "scoring_retries": int, "replica_max_concurrent_requests": int,
    "max_request_wait_time": int, "num_replicas": int, "period_seconds": int, "initial_delay_seconds": int,
    "timeout_seconds": int, "success_threshold": int, "failure_threshold": int, "traffic_percentile": NUMBER,
    "is_default": bool, "is_control_version_type": bool, "run_as_user": int, "run_as_group": int,
    "image_entrypoint": bool, "scoring_workload_identity": bool,
}
ENDPOINT_FLAGS = ("auth_enabled", "token_auth_enabled", "enable_app_insights")


def _field_option(name: str, kind: Any) -> Callable[[F], F]:
    flag = name.replace("_", "-")
    if kind is bool:
        return click.option(f"--{flag}/--no-{flag}", name, default=None, help=f"Set {name} (left unchanged if omitted).")
    return click.option(f"--{flag}", name, type=kind, default=None, help=f"Set {name}.")


def _apply(options: list[Callable[[F], F]]) -> Callable[[F], F]:
    def decorate(command: F) -> F:
        for option in reversed(options):
            command = option(command)
        return command
    return decorate


version_options = _apply([
    *(_field_option(name, kind) for name, kind in VERSION_FIELDS.items()),
    click.option("--model", "models", multiple=True, metavar="NAME:VERSION=URI",
                 help="A model (repeatable); given at all, the list replaces the version's models."),
    click.option("--image", default=None, help="inference_config.image: the scoring image (tag or digest)."),
    click.option("--entry-script", default=None, help="inference_config.entry_script."),
    click.option("--source-directory", default=None, help="inference_config.source_directory."),
    click.option("--env-var", "env_vars", multiple=True, metavar="KEY=VALUE",
                 help="inference_config.environment_variables entry (repeatable)."),
    click.option("--unset", "unset", multiple=True, metavar="FIELD", help="Remove a field so its default applies."),
])
metadata_options = _apply([
    click.option("--description", default=None, help="Set the description."),
    click.option("--tag", "tags", multiple=True, metavar="KEY=VALUE", help="Add or change a tag (repeatable)."),
    click.option("--remove-tag", "remove_tags", multiple=True, metavar="KEY", help="Remove a tag (repeatable)."),
    click.option("--property", "properties", multiple=True, metavar="KEY=VALUE",
                 help="Add a property (repeatable); existing properties never change."),
])
endpoint_flag_options = _apply([_field_option(name, bool) for name in ENDPOINT_FLAGS])


def _changes(options: dict[str, Any], fields: Any, *, metadata: bool, version: bool) -> Changes:
    """Collect parsed options into the Changes an edit applies (to a version, or to the endpoint)."""
    from ..edit.changes import Changes, parse_model, parse_pair
    changes = Changes(values={name: options[name] for name in fields if options.get(name) is not None})
    if version:
        changes.models = [parse_model(m) for m in options.get("models", ())]
        changes.inference = {key: options[key] for key in ("image", "entry_script", "source_directory")
                             if options.get(key) is not None}
        changes.environment_variables = dict(parse_pair(p, "--env-var") for p in options.get("env_vars", ()))
        changes.unset = list(options.get("unset", ()))
    if metadata:
        if options.get("description") is not None:
            changes.values["description"] = options["description"]
        changes.tags = dict(parse_pair(p, "--tag") for p in options.get("tags", ()))
        changes.remove_tags = list(options.get("remove_tags", ()))
        changes.properties = dict(parse_pair(p, "--property") for p in options.get("properties", ()))
    return changes


def _edited(root: Path, path: Path) -> None:
    click.echo(f"wrote {display_path(path, root)}; run `make render` (endpointgen render) and commit both")


@cli.command("new")
@click.argument("endpoint")
@click.option("--env", required=True, metavar="ENV")
@click.option("--version-name", required=True, help="The first version (it becomes the default).")
@click.option("--namespace", default=None, help="Kubernetes namespace (default: the environment's).")
@click.option("--compute-target-name", default=None, help="Must equal the environment's cluster_name.")
@click.option("--primary-key-secret", default=None, help="Key Vault secret holding the primary key.")
@click.option("--secondary-key-secret", default=None, help="Key Vault secret holding the secondary key.")
@click.option("--version-description", default=None, help="Description of the first version.")
@metadata_options
@endpoint_flag_options
@version_options
@click.pass_context
@reports_errors
def new_command(ctx: click.Context, endpoint: str, env: str, version_name: str, **options: Any) -> None:
    """AksEndpoint.deploy_configuration + deploy: write a new spec with one (default) version."""
    from ..edit.commands import new_endpoint
    endpoint_changes = _changes(options, (*ENDPOINT_FLAGS, "namespace", "compute_target_name"), metadata=True,
                                version=False)
    keys = {k: options[f"{k}_secret"] for k in ("primary_key", "secondary_key") if options.get(f"{k}_secret")}
    if keys:
        endpoint_changes.values["auth_keys"] = {f"{k}_secret": v for k, v in keys.items()}
    version_changes = _changes(options, VERSION_FIELDS, metadata=False, version=True)
    if options.get("version_description") is not None:
        version_changes.values["description"] = options["version_description"]
    _edited(ctx.obj, new_endpoint(ctx.obj, env, endpoint, version_name, endpoint_changes, version_changes))


def _version_edit_command(name: str, action: str, help_text: str) -> None:
    """create-version and update-version: the same arguments and options, a different edit."""

    @cli.command(name, help=help_text)
    @click.argument("endpoint")
    @click.argument("version")
    @click.option("--env", required=True, metavar="ENV")
    @metadata_options
    @version_options
    @click.pass_context
    @reports_errors
    def command(ctx: click.Context, endpoint: str, version: str, env: str, **options: Any) -> None:
        from ..edit import commands

        changes = _changes(options, VERSION_FIELDS, metadata=True, version=True)
        _edited(ctx.obj, getattr(commands, action)(ctx.obj, env, endpoint, version, changes))


_version_edit_command("create-version", "create_version", "AksEndpoint.create_version: add a version to an endpoint.")
_version_edit_command("update-version", "update_version",
                      "AksEndpoint.update_version: change the given fields; everything else stays as it is.")


@cli.command("delete-version")
@click.argument("endpoint")
@click.argument("version")
@click.option("--env", required=True, metavar="ENV")
@click.option("--new-default", default=None, metavar="VERSION", help="Required when deleting the default version.")
@click.pass_context
@reports_errors
def delete_version_command(ctx: click.Context, endpoint: str, version: str, env: str, new_default: str | None) -> None:
    """AksEndpoint.delete_version: remove a version (never the last one)."""
    from ..edit.commands import delete_version
    _edited(ctx.obj, delete_version(ctx.obj, env, endpoint, version, new_default))


@cli.command("update")
@click.argument("endpoint")
@click.option("--env", required=True, metavar="ENV")
@metadata_options
@endpoint_flag_options
@click.pass_context
@reports_errors
def update_command(ctx: click.Context, endpoint: str, env: str, **options: Any) -> None:
    """AksEndpoint.update: endpoint-level settings (auth, App Insights, description, tags, properties)."""
    from ..edit.commands import update_endpoint
    _edited(ctx.obj, update_endpoint(ctx.obj, env, endpoint, _changes(options, ENDPOINT_FLAGS, metadata=True, version=False)))


@cli.command("promote")
@click.argument("endpoint")
@click.argument("version")
@click.option("--from", "source", required=True, metavar="ENV", help="Environment to copy the version from.")
@click.option("--to", "target", required=True, metavar="ENV", help="Environment to copy it to.")
@click.option("--traffic-percentile", type=NUMBER, default=None, help="Its traffic share in the target.")
@click.option("--is-default/--no-is-default", "is_default", default=None)
@click.option("--is-control-version-type/--no-is-control-version-type", "is_control_version_type", default=None)
@click.option("--image", default=None, help="Override the image (e.g. the target environment's registry).")
@click.option("--model", "models", multiple=True, metavar="NAME:VERSION=URI", help="Override the models.")
@click.pass_context
@reports_errors
def promote_command(ctx: click.Context, endpoint: str, version: str, source: str, target: str,
                    **options: Any) -> None:
    """Copy a version's block from one environment's spec to another's (dev -> staging -> prod)."""
    from ..edit.commands import promote
    changes = _changes(options, ("traffic_percentile", "is_default", "is_control_version_type"), metadata=False,
                       version=True)
    _edited(ctx.obj, promote(ctx.obj, endpoint, version, source, target, changes))


@cli.command()
@click.argument("endpoint")
@click.option("--env", required=True, metavar="ENV")
@click.pass_context
@reports_errors
def serialize(ctx: click.Context, endpoint: str, env: str) -> None:
    """JSON in the shape of AksEndpoint.serialize() (camelCase, versions by name, effective traffic)."""
    from ..spec.repository import load_repository
    from ..edit.serialize import serialize_endpoint
    repo = load_repository(ctx.obj, [env])
    if repo.problems:
        raise ProblemsFound(repo.problems)
    found = [ep for ep in repo.endpoints if ep.name == endpoint]
    if not found:
        raise UsageError(f"no endpoint {endpoint!r} in environment {env!r}")
    click.echo(json.dumps(serialize_endpoint(found[0]), indent=2))



@cli.command("import")
@click.argument("files", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--env", required=True, metavar="ENV")
@click.option("--name", default=None, metavar="ENDPOINT", help="The endpoint (required with deployment configs).")
@click.option("--image", "images", multiple=True, metavar="VERSION=IMAGE",
              help="The image a version runs (repeatable; every version needs one: v1 built them).")
@click.option("--model-uri", "model_uris", multiple=True, metavar="NAME:VERSION=URI",
              help="Where the model loader finds a model (default: azureml://models/NAME/versions/VERSION).")
@click.option("--dry-run", is_flag=True, help="Print the spec instead of writing it.")
@click.option("--force", is_flag=True, help="Replace an existing spec.")
@click.pass_context
@reports_errors
def import_command(ctx: click.Context, files: tuple[Path, ...], env: str, name: str | None, images: tuple[str, ...],
                   model_uris: tuple[str, ...], dry_run: bool, force: bool) -> None:
    """Migrate from Azure ML SDK v1: a spec from AksEndpoint.serialize()/service JSON or deployment configs."""
    from ..edit.changes import parse_pair
    from ..edit.importer import import_endpoint, write
    select_environments(ctx.obj, [env])
    imported = import_endpoint(ctx.obj, env, list(files), name, dict(parse_pair(i, "--image") for i in images),
                               dict(parse_pair(m, "--model-uri") for m in model_uris), force)
    write(ctx.obj, env, imported, dry_run)
    for warning in imported.warnings:
        click.echo(f"endpointgen: warning: {warning}", err=True)
    for note in imported.key_notes:
        click.echo(f"endpointgen: keys: {note}", err=True)
    if dry_run:
        click.echo(imported.text, nl=False)
    else:
        _edited(ctx.obj, imported.path)
