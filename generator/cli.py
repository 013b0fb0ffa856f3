"""The endpointgen command line: parses options and calls plain functions."""

from __future__ import annotations

import functools
import json
import os
import sys
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

from . import __version__, cache
from .layout import select_environments
from .problems import EndpointgenError, ProblemsFound, UsageError, display_path, format_problems, junit
from .writer import orphan_environments

if TYPE_CHECKING:  # the commands import what they need, so that a render with nothing to do starts fast
    from .edit import Changes
    from .manifests import Options, Report

F = TypeVar("F", bound=Callable[..., Any])
EXIT_INTERNAL = 3


def reports_errors(command: F) -> F:
    """Turn EndpointgenError into its message on stderr and its exit code; no tracebacks."""

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        ctx = click.get_current_context()
        try:
            return command(*args, **kwargs)
        except ProblemsFound as exc:
            output = ctx.meta.get("output", "text")
            if output in ("json", "junit"):  # machine-readable: the document alone, on stdout
                click.echo(format_problems(exc.problems, output))
            else:
                click.echo(format_problems(exc.problems, output), err=True)
                tail = f"; {exc.summary}" if exc.summary else ""
                click.echo(f"endpointgen: {len(exc.problems)} problem(s) found{tail}", err=True)
            ctx.exit(exc.exit_code)
        except EndpointgenError as exc:
            click.echo(f"endpointgen: error: {exc}", err=True)
            ctx.exit(exc.exit_code)

    return wrapper  # type: ignore[return-value]


quiet_option = click.option("--quiet", "-q", is_flag=True, help="No progress bar (it only shows on a terminal).")


class ProgressBar:
    """A progress bar on stderr, drawn only on a terminal and unless --quiet; created on the first report."""

    def __init__(self, label: str, quiet: bool):
        self.label = label
        self.enabled = not quiet and sys.stderr.isatty()
        self.bar: Any = None

    def __call__(self, done: int, total: int) -> None:
        if not self.enabled:
            return
        if self.bar is None:
            self.bar = click.progressbar(length=total, label=self.label, file=sys.stderr)
            self.bar.__enter__()
        self.bar.update(done)

    def __enter__(self) -> ProgressBar:
        return self

    def __exit__(self, *exc: object) -> None:
        if self.bar is not None:
            self.bar.__exit__(None, None, None)


env_option = click.option("--env", "envs", multiple=True, metavar="ENV",
                          help="Environment to work on (repeatable; default: all).")


def schema_options(command: F) -> F:
    """The schema knobs shared by `validate` and `render --validate`."""
    for option in reversed([
        click.option("--schema-location", "locations", multiple=True, metavar="LOCATION",
                     envvar="ENDPOINTGEN_SCHEMA_LOCATION",
                     help="CRD schema folder, kubeconform template (e.g. 'dir/{{ .Group }}/{{ .ResourceKind }}_"
                          "{{ .ResourceAPIVersion }}.json') or http(s) URL (fetched and cached); repeatable. "
                          "Default: schema/crds in the repo, then the schemas vendored with endpointgen. The environment variable takes several, space-separated."),
        click.option("--strict/--no-strict", default=True, show_default=True,
                     help="Reject fields the Kubernetes schemas do not define."),
        click.option("--ignore-missing-schemas", is_flag=True, help="Do not report kinds that have no schema."),
        click.option("--skip", "skip", multiple=True, metavar="KIND",
                     help="Kinds to skip (repeatable, or comma-separated)."),
    ]):
        command = option(command)
    return command


def schema_settings(root: Path, locations: tuple[str, ...], strict: bool, ignore_missing_schemas: bool,
                    skip: tuple[str, ...], engine: str = "builtin") -> Options:
    """The Options of the schema knobs as given on the command line."""
    from .kubeschemas import default_locations
    from .manifests import Options
    return Options(
        locations=list(locations) or default_locations(root),
        strict=strict,
        ignore_missing_schemas=ignore_missing_schemas,
        skip_kinds=frozenset(k.strip() for item in skip for k in item.split(",") if k.strip()),
        engine=engine,
        cache_dir=root / ".endpointgen-cache" / "schemas",
    )


def print_findings(report: Report, output: str) -> None:
    """Waived findings, then problems (with their count), as validate prints them in text or github output."""
    if report.waived:
        click.echo(format_problems(sorted(report.waived), output), err=True)
    if report.problems:
        click.echo(format_problems(sorted(report.problems), output), err=True)
        click.echo(f"endpointgen: {len(report.problems)} problem(s) found in rendered manifests", err=True)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--root", type=click.Path(file_okay=False, path_type=Path), default=Path("."),
              show_default=True, help="The GitOps repository to work on.")
@click.version_option(__version__, prog_name="endpointgen")
@click.pass_context
def cli(ctx: click.Context, root: Path) -> None:
    """Generate Kubernetes and Istio manifests for AksEndpoint-style scoring endpoints."""
    ctx.obj = root


@cli.command()
@env_option
@click.option("--output", type=click.Choice(["text", "json", "junit", "github"]), default="text", show_default=True,
              help="text: path:line:col lines on stderr; json or junit on stdout; github: workflow annotations.")
@click.option("--rendered", "from_disk", is_flag=True,
              help="Check the files in rendered/ and clusters/ instead of an in-memory render.")
@click.option("--specs-only", is_flag=True, help="Check the specs only, not the rendered manifests.")
@schema_options
@click.option("--engine", type=click.Choice(["builtin", "kubeconform"]), default="builtin", show_default=True,
              help="Schema validation engine; kubeconform runs the binary on PATH with the same locations.")
@click.option("--summary", is_flag=True, help="Print a summary line of the objects checked.")
@quiet_option
@click.pass_context
@reports_errors
def validate(ctx: click.Context, envs: tuple[str, ...], output: str, from_disk: bool, specs_only: bool,
             locations: tuple[str, ...], strict: bool, ignore_missing_schemas: bool, skip: tuple[str, ...],
             engine: str, summary: bool, quiet: bool) -> None:
    """Validate the specs, then every rendered object: schemas, API-server rules and policies."""
    from .validation import validate_manifests
    from .repository import cpu_autoscaling_warnings, load_repository
    ctx.meta["output"] = output
    root: Path = ctx.obj
    for warning in cpu_autoscaling_warnings(root, envs):
        click.echo(github_warning(warning) if output == "github" else warning, err=True)
    if specs_only:
        repo = load_repository(root, envs)
        if repo.problems:
            raise ProblemsFound(repo.problems)
        _print_clean(output, f"ok: {len(repo.endpoints)} endpoint(s) in {len(repo.environments)} "
                             "environment(s) are valid")
        return
    options = schema_settings(root, locations, strict, ignore_missing_schemas, skip, engine)
    with ProgressBar("checking manifests", quiet) as bar:
        report = validate_manifests(root, envs, options, from_disk=from_disk, progress=bar)
    if output == "json":
        click.echo(json.dumps([asdict(p) for p in sorted(report.problems) + sorted(report.waived)], indent=2))
    elif output == "junit":
        click.echo(junit(sorted(report.problems), report.files))
    else:
        print_findings(report, output)
    if summary:
        click.echo(report.summary(), err=output in ("json", "junit"))
    if report.problems:
        ctx.exit(1)
    if output in ("text", "github"):
        click.echo(f"ok: {report.endpoints} endpoint(s) in {report.environments} environment(s) are valid; "
                   f"{report.objects} rendered object(s) pass the schema, API-server and policy checks")


def github_warning(line: str) -> str:
    """`path: warning: message` as a GitHub Actions annotation."""
    path, _, message = line.partition(": warning: ")
    return f"::warning file={path}::{message}"


def _print_clean(output: str, message: str) -> None:
    if output == "json":
        click.echo("[]")
    elif output == "junit":
        click.echo(junit([]))
    else:
        click.echo(message)


@cli.command()
@click.argument("endpoint")
@click.option("--env", required=True, metavar="ENV", help="The environment of the endpoint.")
@click.option("--output", type=click.Choice(["table", "json"]), default="table", show_default=True)
@click.pass_context
@reports_errors
def effective(ctx: click.Context, endpoint: str, env: str, output: str) -> None:
    """Show each version's effective traffic share after the default-version rule."""
    from .report import effective_json, effective_table
    from .repository import load_repository
    repo = load_repository(ctx.obj, [env])
    if repo.problems:
        raise ProblemsFound(repo.problems)
    found = [ep for ep in repo.endpoints if ep.name == endpoint]
    if not found:
        names = ", ".join(ep.name for ep in repo.endpoints) or "none"
        raise click.BadParameter(f"no endpoint {endpoint!r} in environment {env!r} (have: {names})",
                                 param_hint="ENDPOINT")
    click.echo(effective_json(found[0]) if output == "json" else effective_table(found[0]))


@cli.command()
@env_option
@click.option("--validate", "check_manifests", is_flag=True,
              help="Also check every rendered object as `validate` does, in the same pass, and write nothing unless "
                   "all pass (renders everything: the no-change and incremental shortcuts are not taken).")
@click.option("--force", is_flag=True,
              help="Set the render cache aside: render everything and rewrite whatever differs on disk (e.g. a "
                   "generated file edited in place, which the cache does not notice).")
@schema_options
@quiet_option
@click.pass_context
@reports_errors
def render(ctx: click.Context, envs: tuple[str, ...], check_manifests: bool, force: bool, locations: tuple[str, ...],
           strict: bool, ignore_missing_schemas: bool, skip: tuple[str, ...], quiet: bool) -> None:
    """Validate the specs and write rendered/<env> and clusters/<env> (atomically)."""
    root: Path = ctx.obj
    current = None
    if not (check_manifests or force):  # nothing changed: answer before the renderer is even imported
        selected = select_environments(root, envs)
        current = cache.current(root, selected)
        if len(current) == len(selected) and (envs or not orphan_environments(root)):
            click.echo("".join(f"{env}: unchanged\n" for env in selected), nl=False)
            return
    from .generate import InvalidManifests, render as render_output

    options = findings = None
    if check_manifests:
        from .manifests import Report

        options, findings = schema_settings(root, locations, strict, ignore_missing_schemas, skip), Report()
    try:
        with ProgressBar("rendering endpoints", quiet) as bar:
            result = render_output(root, envs, bar, options, findings, current=current, force=force)
    except InvalidManifests as exc:
        print_findings(exc.report, "text")
        click.echo("endpointgen: nothing was written", err=True)
        ctx.exit(1)
    for env, diff in sorted(result.items()):
        changed = len(diff.stale) + len(diff.missing)
        summary = "unchanged" if diff.clean else f"{changed} file(s) written, {len(diff.extra)} removed"
        click.echo(f"{env}: {summary}")
    if findings is not None:
        print_findings(findings, "text")
        click.echo(f"ok: {findings.objects} rendered object(s) pass the schema, API-server and policy checks")


@cli.command()
@env_option
@click.option("--base", default=None, metavar="REF",
              help="Git ref of the pull request's base (e.g. origin/main): also apply the rules that need history.")
@quiet_option
@click.pass_context
@reports_errors
def check(ctx: click.Context, envs: tuple[str, ...], base: str | None, quiet: bool) -> None:
    """Exit 1 when rendered/ or clusters/ are not what render would write now (and, with --base, when the
    change alters a deployed property or an endpoint's namespace)."""
    from .generate import StaleOutput, check as check_output
    from .pr import history_problems
    with ProgressBar("rendering endpoints", quiet) as bar:
        lines = check_output(ctx.obj, envs, bar)
    history = history_problems(ctx.obj, base, envs) if base else []
    if lines:
        click.echo("\n".join(lines), err=True)
    if history:
        click.echo(format_problems(sorted(history), "text"), err=True)
    if lines or history:
        reasons = ([f"{len(lines)} file(s) out of date (run `make render` and commit the result)"] if lines else []) \
            + ([f"{len(history)} change(s) that break deployed endpoints"] if history else [])
        raise StaleOutput("; ".join(reasons))
    click.echo("ok: rendered output is current" + (f" and nothing deployed on {base} is broken" if base else ""))


@cli.command("diff")
@env_option
@click.option("--base", required=True, metavar="REF", help="Git ref to compare with (e.g. origin/main).")
@click.option("--format", "output", type=click.Choice(["text", "markdown"]), default="text", show_default=True,
              help="markdown is ready to post as a pull-request comment.")
@click.pass_context
@reports_errors
def diff_command(ctx: click.Context, envs: tuple[str, ...], base: str, output: str) -> None:
    """Describe what the change does per endpoint, then the manifest diff."""
    from .pr import as_markdown, as_text, diff as pr_diff
    result = pr_diff(ctx.obj, base, envs)
    click.echo(as_markdown(result) if output == "markdown" else as_text(result), nl=False)


# --- spec-editing commands: one per AksEndpoint method -------------------------------------------------


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
    "is_default": bool, "is_control_version_type": bool,
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
    from .edit import Changes, parse_model, parse_pair
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
    from .edit import new_endpoint
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
        from . import edit

        changes = _changes(options, VERSION_FIELDS, metadata=True, version=True)
        _edited(ctx.obj, getattr(edit, action)(ctx.obj, env, endpoint, version, changes))


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
    from .edit import delete_version
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
    from .edit import update_endpoint
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
    from .edit import promote
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
    from .repository import load_repository
    from .serialize import serialize_endpoint
    repo = load_repository(ctx.obj, [env])
    if repo.problems:
        raise ProblemsFound(repo.problems)
    found = [ep for ep in repo.endpoints if ep.name == endpoint]
    if not found:
        raise UsageError(f"no endpoint {endpoint!r} in environment {env!r}")
    click.echo(json.dumps(serialize_endpoint(found[0]), indent=2))


@cli.command("serve")
@click.argument("endpoint")
@click.argument("version")
@click.option("--env", required=True, metavar="ENV")
@click.option("--source", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="Local folder with what the image holds at the version's source_directory (the scoring script).")
@click.option("--model", "models", multiple=True, metavar="NAME:VERSION=DIR",
              help="Local folder of one of the version's models (repeatable; every model needs one).")
@click.option("--secret", "secrets", multiple=True, metavar="NAME=VALUE",
              help="Value of an environment variable the pod takes from Key Vault (default: a clearly fake value).")
@click.option("--port", type=click.IntRange(1, 65535), default=5001, show_default=True, help="Local port.")
@click.pass_context
@reports_errors
def serve_command(ctx: click.Context, endpoint: str, version: str, env: str, source: Path, models: tuple[str, ...],
                  secrets: tuple[str, ...], port: int) -> None:
    """LocalWebservice: run a version's scoring script under the real Azure ML inference server, with the
    environment its pod gets."""
    from .edit import parse_pair
    from .serve import serve
    model_dirs = {}
    for item in models:
        name_version, _, folder = item.partition("=")
        name, _, model_version = name_version.partition(":")
        if not (name and model_version and folder):
            raise UsageError(f"--model {item!r}: expected NAME:VERSION=DIR")
        model_dirs[f"{name}/{model_version}"] = Path(folder)
    secret_values = dict(parse_pair(p, "--secret") for p in secrets)
    ctx.exit(serve(ctx.obj, env, endpoint, version, source, model_dirs, secret_values, port, click.echo))


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
    from .edit import parse_pair
    from .importer import import_endpoint, write
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


@cli.command("mesh-config")
@click.option("--env", required=True, metavar="ENV")
@click.pass_context
@reports_errors
def mesh_config_command(ctx: click.Context, env: str) -> None:
    """Print the `mesh` snippet that registers the key-auth provider, for a team that manages the AKS add-on's
    istio-shared-configmap-<revision> itself (key_auth.mesh_config: snippet)."""
    from .keyauth import authorizer_view
    from .repository import load_environments
    from .views import environment_view
    loaded, problems = load_environments(ctx.obj, [env])[env]
    if loaded is None:
        raise ProblemsFound(problems)
    view = authorizer_view(environment_view(loaded), [])
    click.echo(f"# add to the `mesh` key of ConfigMap {view['mesh_namespace']}/{view['mesh_configmap']}")
    click.echo(view["mesh"], nl=False)


@cli.command("vendor-schemas")
@click.option("--from", "location", required=True, metavar="LOCATION",
              help="A CRD schema catalog: a folder laid out as {group}/{kind}_{version}.json, or a kubeconform "
                   "template (local or http(s)).")
@click.option("--to", "target", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Where to write (default: schema/crds in the repo).")
@click.pass_context
@reports_errors
def vendor_schemas_command(ctx: click.Context, location: str, target: Path | None) -> None:
    """Refresh schema/crds: the schema of every custom resource endpointgen renders, from a catalog."""
    from .vendor import vendor_schemas
    folder = target or ctx.obj / "schema" / "crds"
    for path in vendor_schemas(location, folder):
        click.echo(f"wrote {display_path(path, ctx.obj)}")


def main() -> None:
    """Console entry point: unexpected failures exit 3 with one line, not a traceback."""
    try:
        cli.main(prog_name="endpointgen")
    except Exception as exc:  # noqa: BLE001 - last resort so users never see a raw traceback
        if os.environ.get("ENDPOINTGEN_DEBUG"):
            raise
        print(f"endpointgen: internal error: {type(exc).__name__}: {exc} "
              "(set ENDPOINTGEN_DEBUG=1 for the traceback)", file=sys.stderr)
        sys.exit(EXIT_INTERNAL)

