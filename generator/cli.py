"""The endpointgen command line: parses options and calls plain functions."""

from __future__ import annotations

import functools
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from . import __version__
from .problems import EndpointgenError, ProblemsFound, format_problems
from .generate import StaleOutput, check as check_output, render as render_output
from .report import effective_json, effective_table
from .repository import load_repository

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
            if output == "json":  # machine-readable: the JSON alone, on stdout
                click.echo(format_problems(exc.problems, output))
            else:
                click.echo(format_problems(exc.problems, output), err=True)
                click.echo(f"endpointgen: {len(exc.problems)} problem(s) found", err=True)
            ctx.exit(exc.exit_code)
        except EndpointgenError as exc:
            click.echo(f"endpointgen: error: {exc}", err=True)
            ctx.exit(exc.exit_code)

    return wrapper  # type: ignore[return-value]


env_option = click.option("--env", "envs", multiple=True, metavar="ENV",
                          help="Environment to work on (repeatable; default: all).")


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
@click.option("--output", type=click.Choice(["text", "json", "github"]), default="text", show_default=True,
              help="How to print problems: path:line:col text (stderr), JSON (stdout), or GitHub annotations.")
@click.pass_context
@reports_errors
def validate(ctx: click.Context, envs: tuple[str, ...], output: str) -> None:
    """Validate every environment and endpoint spec (schema, then semantic rules)."""
    ctx.meta["output"] = output
    repo = load_repository(ctx.obj, envs)
    if repo.problems:
        raise ProblemsFound(repo.problems)
    if output == "json":
        click.echo("[]")
        return
    click.echo(f"ok: {len(repo.endpoints)} endpoint(s) in {len(repo.environments)} environment(s) are valid")


@cli.command()
@click.argument("endpoint")
@click.option("--env", required=True, metavar="ENV", help="The environment of the endpoint.")
@click.option("--output", type=click.Choice(["table", "json"]), default="table", show_default=True)
@click.pass_context
@reports_errors
def effective(ctx: click.Context, endpoint: str, env: str, output: str) -> None:
    """Show each version's effective traffic share after the default-version rule."""
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
@click.pass_context
@reports_errors
def render(ctx: click.Context, envs: tuple[str, ...]) -> None:
    """Validate the specs and write rendered/<env> and clusters/<env> (atomically)."""
    result = render_output(ctx.obj, envs)
    for env, diff in sorted(result.items()):
        changed = len(diff.stale) + len(diff.missing)
        summary = "unchanged" if diff.clean else f"{changed} file(s) written, {len(diff.extra)} removed"
        click.echo(f"{env}: {summary}")


@cli.command()
@env_option
@click.pass_context
@reports_errors
def check(ctx: click.Context, envs: tuple[str, ...]) -> None:
    """Exit 1 when the committed rendered/ or clusters/ output is not what render would write now."""
    lines = check_output(ctx.obj, envs)
    if lines:
        click.echo("\n".join(lines), err=True)
        raise StaleOutput(f"{len(lines)} file(s) out of date; run `make render` and commit the result")
    click.echo("ok: rendered output is current")


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

