"""Commands beside the pipeline: serve a version locally, print the mesh snippet, refresh the vendored schemas."""

from __future__ import annotations

from pathlib import Path

import click

from ..problems import ProblemsFound, display_path
from .base import cli, reports_errors


@cli.command("serve", short_help="Run a version's scoring pod locally (LocalWebservice).")
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
@click.option("--host", default="127.0.0.1", show_default=True, metavar="ADDRESS",
              help="Address to listen on (an IP address); anything but loopback is reachable from the network.")
@click.option("--app-insights", is_flag=True,
              help="Send the server's telemetry to App Insights (needs --secret AML_APP_INSIGHTS_KEY=KEY); off by "
                   "default, so nothing leaves the machine and a failing init() reports at once.")
@click.pass_context
@reports_errors
def serve_command(ctx: click.Context, endpoint: str, version: str, env: str, source: Path, models: tuple[str, ...],
                  secrets: tuple[str, ...], port: int, host: str, app_insights: bool) -> None:
    """LocalWebservice: run a version's scoring script under the real Azure ML inference server, with the
    environment its pod gets.

    \b
    Example:
      endpointgen serve sentiment blue --env dev --source ./src --model sentiment-distilbert:7=./model
    """
    import ipaddress

    from ..edit.changes import parse_pair, split_model
    from ..problems import UsageError
    from ..serve.server import serve
    try:
        if not ipaddress.ip_address(host).is_loopback:
            click.echo(f"endpointgen: warning: --host {host} is not a loopback address: the scoring script is "
                       "reachable from the network, with no auth", err=True)
    except ValueError:
        raise UsageError(f"--host {host!r}: not an IP address (e.g. 127.0.0.1)") from None
    model_dirs = {}
    for item in models:
        name, model_version, folder = split_model(item, "NAME:VERSION=DIR")
        model_dirs[f"{name}/{model_version}"] = Path(folder)
    secret_values = dict(parse_pair(p, "--secret") for p in secrets)
    ctx.exit(serve(ctx.obj, env, endpoint, version, source, model_dirs, secret_values, port, click.echo,
                   host=host, app_insights=app_insights))


@cli.command("mesh-config", short_help="Print the mesh snippet that registers key auth.")
@click.option("--env", required=True, metavar="ENV")
@click.pass_context
@reports_errors
def mesh_config_command(ctx: click.Context, env: str) -> None:
    """Print the `mesh` snippet that registers the key-auth provider, for a team that manages the AKS add-on's
    istio-shared-configmap-<revision> itself (key_auth.mesh_config: snippet)."""
    from ..render.keyauth import provider_snippet
    from ..render.mesh import MESH_NAMESPACE, configmap_name, installed_revisions
    from ..spec.repository import load_environments
    from ..render.views import environment_view
    loaded, problems = load_environments(ctx.obj, [env])[env]
    if loaded is None:
        raise ProblemsFound(problems)
    view = environment_view(loaded)
    names = ", ".join(f"{MESH_NAMESPACE}/{configmap_name(r)}" for r in installed_revisions(view["istio"]))
    click.echo(f"# add to the `mesh` key of ConfigMap {names}")
    click.echo(provider_snippet(view), nl=False)


@cli.command("identities", short_help="List managed identities' federated credentials.")
@click.option("--env", "envs", multiple=True, metavar="ENV", help="An environment (repeatable; default: all).")
@click.option("--output", type=click.Choice(["text", "json"]), default="text", show_default=True,
              help="text: a shell script of az commands; json: the same as data.")
@click.pass_context
@reports_errors
def identities_command(ctx: click.Context, envs: tuple[str, ...], output: str) -> None:
    """List each managed identity's federated credentials and role assignments, as az commands or JSON."""
    import json

    from ..spec.identities import az_commands, plan
    from ..spec.repository import load_repository
    repo = load_repository(ctx.obj, list(envs))
    if repo.problems:
        raise ProblemsFound(repo.problems)
    found = plan(repo.environments, repo.endpoints)
    click.echo(json.dumps(found, indent=2) if output == "json" else az_commands(found), nl=output == "json")


@cli.command("vendor-schemas", short_help="Refresh schema/crds from a CRD catalog.")
@click.option("--from", "location", required=True, metavar="LOCATION",
              help="A CRD schema catalog: a folder laid out as {group}/{kind}_{version}.json, or a kubeconform "
                   "template (local or http(s)).")
@click.option("--to", "target", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Where to write (default: schema/crds in the repo).")
@click.pass_context
@reports_errors
def vendor_schemas_command(ctx: click.Context, location: str, target: Path | None) -> None:
    """Refresh schema/crds: the schema of every custom resource endpointgen renders, from a catalog."""
    from ..check.vendor import vendor_schemas
    folder = target or ctx.obj / "schema" / "crds"
    for path in vendor_schemas(location, folder):
        click.echo(f"wrote {display_path(path, ctx.obj)}")


@cli.command("tools", short_help="Show, or build, the pinned Go tools.")
@click.option("--build", "build", is_flag=True, help="Build the tools that are not in the cache yet.")
@click.argument("names", nargs=-1, metavar="[TOOL]...")
@reports_errors
def tools_command(build: bool, names: tuple[str, ...]) -> None:
    """The pinned Go tools (tools/): version and cache folder of each, built first with --build."""
    from ..check import gotools
    from ..problems import UsageError
    unknown = sorted(set(names) - set(gotools.TOOLS))
    if unknown:
        raise UsageError(f"unknown tool(s) {', '.join(unknown)}; known: {', '.join(gotools.TOOLS)}")
    for name in names or gotools.TOOLS:
        tool = gotools.TOOLS[name]
        if build:
            gotools.ensure(tool)
        folder = gotools.tool_dir(tool)
        state = "built" if folder.exists() else "not built"
        click.echo(f"{name} {tool.version}: {folder} ({state})")
