"""The pipeline commands: validate, effective, render, check and diff."""

from __future__ import annotations

import json
import re
from dataclasses import asdict
from pathlib import Path

import click

from ..layout import default_schema_locations, select_environments
from ..output import cache
from ..output.writer import orphan_environments
from ..problems import ProblemsFound, format_problems, junit
from .base import (ProgressBar, cli, env_option, print_findings, quiet_option, reports_errors, schema_options,
                   schema_settings, skip_kinds)


@cli.command(short_help="Check the specs and every rendered object.")
@env_option
@click.option("--output", type=click.Choice(["text", "json", "junit", "github"]), default="text", show_default=True,
              help="text: path:line:col lines on stderr; json or junit on stdout; github: workflow annotations.")
@click.option("--rendered", "from_disk", is_flag=True,
              help="Check the files in rendered/ and clusters/ instead of an in-memory render.")
@click.option("--specs-only", is_flag=True, help="Check the specs only, not the rendered manifests.")
@schema_options
@click.option("--engine", type=click.Choice(["builtin", "kubeconform", "both"]), default="builtin", show_default=True,
              help="Schema validation engine: kubeconform runs the pinned kubeconform (built on first use) with the "
                   "same locations; both runs the two and fails on any object they judge differently.")
@click.option("--summary", is_flag=True, help="Print a summary line of the objects checked.")
@quiet_option
@click.pass_context
@reports_errors
def validate(ctx: click.Context, envs: tuple[str, ...], output: str, from_disk: bool, specs_only: bool,
             locations: tuple[str, ...], strict: bool, ignore_missing_schemas: bool, skip: tuple[str, ...],
             engine: str, summary: bool, quiet: bool) -> None:
    """Validate the specs, then every rendered object: schemas, API-server rules and policies."""
    from ..pipeline.validation import validate_manifests
    from ..spec.repository import cpu_autoscaling_warnings, load_repository
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


@cli.command(short_help="Show each version's effective traffic share.")
@click.argument("endpoint")
@click.option("--env", required=True, metavar="ENV", help="The environment of the endpoint.")
@click.option("--output", type=click.Choice(["table", "json"]), default="table", show_default=True)
@click.pass_context
@reports_errors
def effective(ctx: click.Context, endpoint: str, env: str, output: str) -> None:
    """Show each version's effective traffic share after the default-version rule."""
    from ..spec.effective import effective_json, effective_table
    from ..spec.repository import load_repository
    repo = load_repository(ctx.obj, [env])
    if repo.problems:
        raise ProblemsFound(repo.problems)
    found = [ep for ep in repo.endpoints if ep.name == endpoint]
    if not found:
        names = ", ".join(ep.name for ep in repo.endpoints) or "none"
        raise click.BadParameter(f"no endpoint {endpoint!r} in environment {env!r} (have: {names})",
                                 param_hint="ENDPOINT")
    click.echo(effective_json(found[0]) if output == "json" else effective_table(found[0]))


@cli.command(short_help="Render the specs into rendered/ and clusters/, checked.")
@env_option
@click.option("--validate", "check_manifests", is_flag=True, hidden=True,
              help="Accepted for scripts written before render always checked; it changes nothing.")
@click.option("--force", is_flag=True,
              help="Set the render cache aside: render and check everything and rewrite whatever differs on disk "
                   "(e.g. a generated file edited in place, which the cache does not notice).")
@schema_options
@quiet_option
@click.pass_context
@reports_errors
def render(ctx: click.Context, envs: tuple[str, ...], check_manifests: bool, force: bool, locations: tuple[str, ...],
           strict: bool, ignore_missing_schemas: bool, skip: tuple[str, ...], quiet: bool) -> None:
    """Validate the specs, render, check every object as `validate` does, and write rendered/<env> and
    clusters/<env>: all of it or, when anything fails, nothing."""
    root: Path = ctx.obj
    current = None
    if not force:  # nothing changed since a render that passed the same checks: answer before importing them
        selected = select_environments(root, envs)
        current = cache.current(root, selected, cache.checks_digest(
            list(locations) or default_schema_locations(root), strict, ignore_missing_schemas, skip_kinds(skip)))
        if len(current) == len(selected) and (envs or not orphan_environments(root)):
            click.echo("".join(f"{env}: unchanged\n" for env in selected), nl=False)
            return
    from ..check.manifests import Report
    from ..pipeline.generate import InvalidManifests, render as render_output

    options, findings = schema_settings(root, locations, strict, ignore_missing_schemas, skip), Report()
    try:
        with ProgressBar("rendering endpoints", quiet) as bar:
            result = render_output(root, envs, bar, options, findings, current=current, force=force)
    except InvalidManifests as exc:
        print_findings(exc.report, "text", waived=False)
        click.echo("endpointgen: nothing was written", err=True)
        ctx.exit(1)
    for env, diff in sorted(result.items()):
        changed = len(diff.stale) + len(diff.missing)
        summary = "unchanged" if diff.clean else f"{changed} file(s) written, {len(diff.extra)} removed"
        click.echo(f"{env}: {summary}")
    if findings.objects:
        waived = f"; {len(findings.waived)} finding(s) waived by the specs (`validate` lists them)" \
            if findings.waived else ""
        click.echo(f"checked: {findings.objects} rendered object(s) pass the schema, API-server and policy checks"
                   f"{waived}")


@cli.command(short_help="Fail when rendered/ is stale or the change breaks the base.")
@env_option
@click.option("--base", default=None, metavar="REF",
              help="Git ref of the pull request's base (e.g. origin/main): also apply the rules that need history.")
@quiet_option
@click.pass_context
@reports_errors
def check(ctx: click.Context, envs: tuple[str, ...], base: str | None, quiet: bool) -> None:
    """Exit 1 when rendered/ or clusters/ are not what render would write now (and, with --base, when the
    change alters a deployed property or an endpoint's namespace)."""
    from ..pipeline.generate import StaleOutput, check as check_output
    from ..pr.history import history_findings
    with ProgressBar("rendering endpoints", quiet) as bar:
        lines = check_output(ctx.obj, envs, bar)
    history, warnings = history_findings(ctx.obj, base, envs) if base else ([], [])
    for warning in warnings:
        click.echo(warning, err=True)
    if lines:
        click.echo("\n".join(lines), err=True)
    if history:
        click.echo(format_problems(sorted(history), "text"), err=True)
    if lines or history:
        reasons = ([f"{len(lines)} file(s) out of date (run `make render` and commit the result)"] if lines else []) \
            + ([f"{len(history)} change(s) that break deployed endpoints"] if history else [])
        raise StaleOutput("; ".join(reasons))
    click.echo("ok: rendered output is current" + (f" and nothing deployed on {base} is broken" if base else ""))


@cli.command("diff", short_help="Say what a change does, then show the manifest diff.")
@env_option
@click.option("--base", required=True, metavar="REF", help="Git ref to compare with (e.g. origin/main).")
@click.option("--format", "output", type=click.Choice(["text", "markdown"]), default="text", show_default=True,
              help="markdown is ready to post as a pull-request comment.")
@click.option("--max-chars", type=click.IntRange(min=2048), default=65_536, show_default=True, metavar="N",
              help="markdown only: the comment's most characters (GitHub refuses longer ones). The summary stays "
                   "whole; the manifest diff is cut per file, with a note on what was left out.")
@click.option("--full-diff", "full_diff_file", type=click.Path(dir_okay=False, writable=True, path_type=Path),
              metavar="FILE", help="Also write the whole text diff, never cut, to FILE (from the same render).")
@click.option("--full-diff-url", metavar="URL", callback=lambda _c, _p, url: _web_address(url),
              help="markdown only: where the full diff can be read (e.g. the workflow run's artifacts); the note "
                   "on a cut comment links it.")
@click.pass_context
@reports_errors
def diff_command(ctx: click.Context, envs: tuple[str, ...], base: str, output: str, max_chars: int,
                 full_diff_file: Path | None, full_diff_url: str | None) -> None:
    """Describe what the change does per endpoint, then the manifest diff."""
    from ..pr.comment import as_markdown
    from ..pr.diff import as_text, diff as pr_diff
    result = pr_diff(ctx.obj, base, envs)
    if full_diff_file is not None:
        full_diff_file.write_text(as_text(result), encoding="utf-8")
    click.echo(as_markdown(result, max_chars, full_diff_url) if output == "markdown" else as_text(result), nl=False)


def _web_address(url: str | None) -> str | None:
    """An http(s) address with nothing in it that could end a markdown link."""
    if url is not None and not re.fullmatch(r"https?://[^\s<>()\[\]`]+", url):
        raise click.BadParameter(f"{url!r} is not an http(s) address without spaces, brackets or backquotes")
    return url
