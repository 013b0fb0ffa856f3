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
# What each field means, with its unit; the default is added from spec/defaults.py (README, "Version fields").
FIELD_HELP = {
    "autoscale_enabled": "Autoscale on requests in flight per replica.",
    "autoscale_min_replicas": "Fewest replicas while autoscaling.",
    "autoscale_max_replicas": "Most replicas while autoscaling.",
    "autoscale_refresh_seconds": "Seconds between scale-ups (1-1800).",
    "autoscale_target_utilization": "Percent of --replica-max-concurrent-requests in flight per replica that "
                                    "autoscaling keeps (1-100).",
    "collect_model_data": "Collect the model's inputs and outputs.",
    "cpu_cores": "CPU cores requested per replica (0.5 is half a core).",
    "memory_gb": "Memory requested per replica, in GB (GiB).",
    "cpu_cores_limit": "CPU cores a replica may use at most.",
    "memory_gb_limit": "Memory a replica may use at most, in GB (without it: the request).",
    "gpu_cores": "GPUs per replica (whole GPUs; requests equal limits).",
    "scoring_timeout_ms": "Milliseconds a scoring call may take.",
    "scoring_retries": "Mesh retries of a call whose connection failed (0-5).",
    "replica_max_concurrent_requests": "Calls one replica serves at once.",
    "max_request_wait_time": "Milliseconds a call may wait in a replica's queue.",
    "num_replicas": "A fixed number of replicas; turns autoscaling off.",
    "period_seconds": "Seconds between liveness probes.",
    "initial_delay_seconds": "Seconds before the first liveness probe.",
    "timeout_seconds": "Seconds a liveness probe may take.",
    "success_threshold": "Probes that must pass in a row for a replica to be ready.",
    "failure_threshold": "Probes that may fail in a row before the replica restarts.",
    "traffic_percentile": "Percent of the endpoint's traffic (0-100, may be fractional); the default version "
                          "takes what the others leave.",
    "is_default": "Make it the default version (exactly one is).",
    "is_control_version_type": "Make it the control version (at most one is).",
    "run_as_user": "Numeric user the pod runs as.",
    "run_as_group": "Numeric group the pod runs as (also its fsGroup).",
    "image_entrypoint": "Start the image's own entrypoint instead of azmlinfsrv.",
    "scoring_workload_identity": "Give the model's code the endpoint's workload-identity token.",
    "auth_enabled": "Key auth: callers send a key kept in Key Vault.",
    "token_auth_enabled": "Azure AD token auth (the environment's token_auth).",
    "enable_app_insights": "Send the inference server's telemetry to App Insights.",
}
FIELD_DEFAULTS = {"autoscale_enabled": "on unless --num-replicas", "num_replicas": "unset: autoscaling",
                  "is_default": "the first version", "auth_enabled": "on unless token auth",
                  "token_auth_enabled": "off", "enable_app_insights": "off"}
DEFAULTS_NOTE = ("A field the spec never sets takes the default shown, or the environment's `defaults:`. "
                 "The edit is validated like the whole repository and written only when valid, comments kept.")
ENV_HELP = "The environment: environments/ENV/."


def example(*lines: str) -> str:
    """An epilog of one example, kept as written (click's \\b stops it being rewrapped)."""
    return "\b\nExample:\n" + " \\\n".join(f"  {line}" if i == 0 else f"      {line}" for i, line in enumerate(lines))


def field_help(name: str) -> str:
    """An option's help: the field's meaning and unit, then its default (the environment's `defaults:` may set
    another)."""
    from ..spec.defaults import VERSION_DEFAULTS
    default = FIELD_DEFAULTS.get(name, VERSION_DEFAULTS.get(name))
    shown = {True: "on", False: "off"}[default] if isinstance(default, bool) else "none" if default is None else default
    return f"{FIELD_HELP[name]} Default: {shown}."


def _field_option(name: str, kind: Any) -> Callable[[F], F]:
    flag = name.replace("_", "-")
    if kind is bool:
        return click.option(f"--{flag}/--no-{flag}", name, default=None, help=field_help(name))
    return click.option(f"--{flag}", name, type=kind, default=None, help=field_help(name))


def _apply(options: list[Callable[[F], F]]) -> Callable[[F], F]:
    def decorate(command: F) -> F:
        for option in reversed(options):
            command = option(command)
        return command
    return decorate


version_options = _apply([
    *(_field_option(name, kind) for name, kind in VERSION_FIELDS.items()),
    click.option("--model", "models", multiple=True, metavar="NAME:VERSION=URI",
                 help="A model the loader puts under AZUREML_MODEL_DIR; URI https://<account>.blob.core.windows.net/"
                      "... or azureml://... (repeatable; given at all, the list replaces the version's models). "
                      "Default: none (the image holds the model)."),
    click.option("--image", default=None, help="inference_config.image: the scoring image, pinned by tag or "
                                                "@sha256 digest (not :latest)."),
    click.option("--entry-script", default=None, help="inference_config.entry_script: the scoring script, "
                                                       "relative to the source directory (e.g. score.py)."),
    click.option("--source-directory", default=None, help="inference_config.source_directory: the script's folder "
                                                           "in the image. Default: /var/azureml-app."),
    click.option("--env-var", "env_vars", multiple=True, metavar="KEY=VALUE",
                 help="An inference_config.environment_variables entry (repeatable); never a secret."),
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


@cli.command("new", short_help="Write a new endpoint spec with one version.", epilog=example(
    "endpointgen new churn --env dev --version-name gbm-v1",
    "--image mlacrdev.azurecr.io/scoring/churn:1.0.0 --entry-script score.py",
    "--model churn-gbm:1=https://mlmodelsdev.blob.core.windows.net/models/churn-gbm/1"))
@click.argument("endpoint")
@click.option("--env", required=True, metavar="ENV", help=ENV_HELP)
@click.option("--version-name", required=True, help="The first version (it becomes the default).")
@click.option("--namespace", default=None, help="Kubernetes namespace. Default: the environment's namespace.")
@click.option("--compute-target-name", default=None, help="Must equal the environment's cluster_name.")
@click.option("--primary-key-secret", default=None, help="Key Vault secret holding the primary key. Default: ENDPOINT-primary-key.")
@click.option("--secondary-key-secret", default=None, help="Key Vault secret holding the secondary key. Default: none.")
@click.option("--version-description", default=None, help="Description of the first version.")
@metadata_options
@endpoint_flag_options
@version_options
@click.pass_context
@reports_errors
def new_command(ctx: click.Context, endpoint: str, env: str, version_name: str, **options: Any) -> None:
    """AksEndpoint.deploy_configuration + deploy: write environments/ENV/endpoints/ENDPOINT.yaml with one
    version, the default.

    Required: --env, --version-name, --image and --entry-script (the version's inference_config). Key auth is on
    unless --token-auth-enabled; the keys are Key Vault secrets (ENDPOINT-primary-key by default), never in git.
    A field the spec never sets takes the default shown, or the environment's `defaults:`. The spec is validated
    like the whole repository and written only when valid.
    """
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


def _version_edit_command(name: str, action: str, short_help: str, help_text: str, epilog: str) -> None:
    """create-version and update-version: the same arguments and options, a different edit."""

    @cli.command(name, short_help=short_help, help=help_text, epilog=epilog)
    @click.argument("endpoint")
    @click.argument("version")
    @click.option("--env", required=True, metavar="ENV", help=ENV_HELP)
    @metadata_options
    @version_options
    @click.pass_context
    @reports_errors
    def command(ctx: click.Context, endpoint: str, version: str, env: str, **options: Any) -> None:
        from ..edit import commands

        changes = _changes(options, VERSION_FIELDS, metadata=True, version=True)
        _edited(ctx.obj, getattr(commands, action)(ctx.obj, env, endpoint, version, changes))


_version_edit_command(
    "create-version", "create_version", "Add a version to an endpoint.",
    "AksEndpoint.create_version: add VERSION to ENDPOINT's spec in ENV.\n\nRequired: --env, --image and "
    "--entry-script. It takes --traffic-percentile of the traffic (default 0) from the default version. "
    + DEFAULTS_NOTE,
    example("endpointgen create-version sentiment amber --env dev --traffic-percentile 10",
            "--image mlacrdev.azurecr.io/scoring/sentiment:1.5.0 --entry-script score.py",
            "--model sentiment-distilbert:9=https://mlmodelsdev.blob.core.windows.net/models/sentiment-distilbert/9"))
_version_edit_command(
    "update-version", "update_version", "Change some fields of a version.",
    "AksEndpoint.update_version: change the fields given; everything else stays as it is.\n\nRequired: --env. "
    "--unset FIELD removes a field so its default applies again. " + DEFAULTS_NOTE,
    example("endpointgen update-version sentiment green --env prod --traffic-percentile 20",
            "--autoscale-max-replicas 8"))


@cli.command("delete-version", short_help="Remove a version from an endpoint.", epilog=example(
    "endpointgen delete-version sentiment blue --env dev --new-default green"))
@click.argument("endpoint")
@click.argument("version")
@click.option("--env", required=True, metavar="ENV", help=ENV_HELP)
@click.option("--new-default", default=None, metavar="VERSION", help="Required when deleting the default version.")
@click.pass_context
@reports_errors
def delete_version_command(ctx: click.Context, endpoint: str, version: str, env: str, new_default: str | None) -> None:
    """AksEndpoint.delete_version: remove VERSION from ENDPOINT's spec in ENV (never the last one).

    Required: --env, and --new-default when VERSION is the default. Its traffic goes to the default version.
    """
    from ..edit.commands import delete_version
    _edited(ctx.obj, delete_version(ctx.obj, env, endpoint, version, new_default))


@cli.command("update", short_help="Change an endpoint's own settings.", epilog=example(
    "endpointgen update sentiment --env prod --tag owner=reviews-ml --no-enable-app-insights"))
@click.argument("endpoint")
@click.option("--env", required=True, metavar="ENV", help=ENV_HELP)
@metadata_options
@endpoint_flag_options
@click.pass_context
@reports_errors
def update_command(ctx: click.Context, endpoint: str, env: str, **options: Any) -> None:
    """AksEndpoint.update: the endpoint's own settings (auth, App Insights, description, tags, properties);
    what is not given stays as it is.

    Required: --env. A property, once set, never changes (v1 kept them forever): only new keys are added.
    """
    from ..edit.commands import update_endpoint
    _edited(ctx.obj, update_endpoint(ctx.obj, env, endpoint, _changes(options, ENDPOINT_FLAGS, metadata=True, version=False)))


@cli.command("promote", short_help="Copy a version to another environment.", epilog=example(
    "endpointgen promote sentiment green --from dev --to prod --traffic-percentile 10",
    "--image mlacrprod.azurecr.io/scoring/sentiment:1.4.2"))
@click.argument("endpoint")
@click.argument("version")
@click.option("--from", "source", required=True, metavar="ENV", help="Environment to copy the version from.")
@click.option("--to", "target", required=True, metavar="ENV", help="Environment to copy it to.")
@click.option("--traffic-percentile", type=NUMBER, default=None,
              help="Its percent of the traffic in the target (0-100). Default: what it has in the source.")
@click.option("--is-default/--no-is-default", "is_default", default=None, help=field_help("is_default"))
@click.option("--is-control-version-type/--no-is-control-version-type", "is_control_version_type", default=None,
              help=field_help("is_control_version_type"))
@click.option("--image", default=None, help="Override the image (e.g. the target environment's registry).")
@click.option("--model", "models", multiple=True, metavar="NAME:VERSION=URI", help="Override the models.")
@click.pass_context
@reports_errors
def promote_command(ctx: click.Context, endpoint: str, version: str, source: str, target: str,
                    **options: Any) -> None:
    """Copy VERSION's block from one environment's spec of ENDPOINT to another's (dev -> staging -> prod),
    creating the target spec or replacing the version there.

    Required: --from and --to. Give --image and --model where the target has its own registry and model store.
    """
    from ..edit.commands import promote
    changes = _changes(options, ("traffic_percentile", "is_default", "is_control_version_type"), metadata=False,
                       version=True)
    _edited(ctx.obj, promote(ctx.obj, endpoint, version, source, target, changes))


@cli.command(short_help="Print an endpoint as AksEndpoint.serialize() JSON.")
@click.argument("endpoint")
@click.option("--env", required=True, metavar="ENV", help=ENV_HELP)
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



@cli.command("import", short_help="Write a spec from Azure ML SDK v1 files.", epilog=example(
    "endpointgen import --env prod serialize.json",
    "--image blue=mlacrprod.azurecr.io/scoring/churn:1.0 --image green=mlacrprod.azurecr.io/scoring/churn:2.0",
    "--image canary=mlacrprod.azurecr.io/scoring/churn:2.1",
    "--model-uri churn-model:3=https://mlmodelsprod.blob.core.windows.net/models/churn-model/3"))
@click.argument("files", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--env", required=True, metavar="ENV", help=ENV_HELP)
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
    """Migrate from Azure ML SDK v1: write environments/ENV/endpoints/<name>.yaml from the JSON of
    AksEndpoint.serialize() (or the service JSON), or from AKSENDPOINT deployment configs (one file per version)
    with an optional inference config.

    Required: --env, and --image VERSION=IMAGE for every version (v1 built the images). Keys are never imported;
    what cannot be mapped is said. --dry-run prints the spec instead.
    """
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
