"""The endpointgen command line: parses options and calls plain functions."""

from __future__ import annotations

import functools
import json
import os
import sys
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any, TypeVar

import click

from . import __version__
from .problems import EndpointgenError, ProblemsFound, format_problems, junit
from .generate import StaleOutput, check as check_output, render as render_output, validate_manifests
from .manifests import Options
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
            if output in ("json", "junit"):  # machine-readable: the document alone, on stdout
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
@click.option("--output", type=click.Choice(["text", "json", "junit", "github"]), default="text", show_default=True,
              help="text: path:line:col lines on stderr; json or junit on stdout; github: workflow annotations.")
@click.option("--rendered", "from_disk", is_flag=True,
              help="Check the files in rendered/ and clusters/ instead of an in-memory render.")
@click.option("--specs-only", is_flag=True, help="Check the specs only, not the rendered manifests.")
@click.option("--schema-location", "locations", multiple=True, metavar="LOCATION",
              envvar="ENDPOINTGEN_SCHEMA_LOCATION",
              help="CRD schema folder, kubeconform template (e.g. 'dir/{{ .Group }}/{{ .ResourceKind }}_"
                   "{{ .ResourceAPIVersion }}.json') or http(s) URL (fetched and cached); repeatable. "
                   "Default: schema/crds in the repo.")
@click.option("--strict/--no-strict", default=True, show_default=True,
              help="Reject fields the Kubernetes schemas do not define.")
@click.option("--ignore-missing-schemas", is_flag=True, help="Do not report kinds that have no schema.")
@click.option("--skip", "skip", multiple=True, metavar="KIND", help="Kinds to skip (repeatable, or comma-separated).")
@click.option("--engine", type=click.Choice(["builtin", "kubeconform"]), default="builtin", show_default=True,
              help="Schema validation engine; kubeconform runs the binary on PATH with the same locations.")
@click.option("--summary", is_flag=True, help="Print a summary line of the objects checked.")
@click.pass_context
@reports_errors
def validate(ctx: click.Context, envs: tuple[str, ...], output: str, from_disk: bool, specs_only: bool,
             locations: tuple[str, ...], strict: bool, ignore_missing_schemas: bool, skip: tuple[str, ...],
             engine: str, summary: bool) -> None:
    """Validate the specs, then every rendered object: schemas, API-server rules and policies."""
    ctx.meta["output"] = output
    root: Path = ctx.obj
    if specs_only:
        repo = load_repository(root, envs)
        if repo.problems:
            raise ProblemsFound(repo.problems)
        _print_clean(output, f"ok: {len(repo.endpoints)} endpoint(s) in {len(repo.environments)} "
                             "environment(s) are valid")
        return
    options = Options(
        locations=list(locations) or [str(root / "schema" / "crds")],
        strict=strict,
        ignore_missing_schemas=ignore_missing_schemas,
        skip_kinds=frozenset(k.strip() for item in skip for k in item.split(",") if k.strip()),
        engine=engine,
        cache_dir=root / ".endpointgen-cache" / "schemas",
    )
    report = validate_manifests(root, envs, options, from_disk=from_disk)
    if output == "json":
        click.echo(json.dumps([asdict(p) for p in sorted(report.problems) + sorted(report.waived)], indent=2))
    elif output == "junit":
        click.echo(junit(sorted(report.problems), report.files))
    else:
        if report.waived:
            lines = [str(p) for p in sorted(report.waived)] if output == "text" else [
                f"::notice file={p.path},line={p.line},col={p.col}::{p.field}: {p.message} [{p.rule}] waived: "
                f"{p.waiver}" for p in sorted(report.waived)]
            click.echo("\n".join(lines), err=True)
        if report.problems:
            click.echo(format_problems(sorted(report.problems), output), err=True)
            click.echo(f"endpointgen: {len(report.problems)} problem(s) found in rendered manifests", err=True)
    if summary:
        click.echo(report.summary(), err=output in ("json", "junit"))
    if report.problems:
        ctx.exit(1)
    if output in ("text", "github"):
        click.echo(f"ok: {report.endpoints} endpoint(s) in {report.environments} environment(s) are valid; "
                   f"{report.objects} rendered object(s) pass the schema, API-server and policy checks")


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

