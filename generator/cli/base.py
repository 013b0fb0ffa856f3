"""The click group, the options several commands share, progress, and errors as one line and an exit code."""

from __future__ import annotations

import functools
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

from .. import __version__
from ..layout import default_schema_locations, find_root
from ..problems import EndpointgenError, ProblemsFound, format_problems

if TYPE_CHECKING:  # the commands import what they need, so that a render with nothing to do starts fast
    from ..check.manifests import Options, Report

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
    from ..check.manifests import Options
    from ..output.cache import CACHE_DIR
    return Options(
        locations=list(locations) or default_schema_locations(root),
        strict=strict,
        ignore_missing_schemas=ignore_missing_schemas,
        skip_kinds=skip_kinds(skip),
        engine=engine,
        cache_dir=root / CACHE_DIR / "schemas",
    )


def skip_kinds(skip: tuple[str, ...]) -> frozenset[str]:
    """The kinds of `--skip`, repeated or comma-separated."""
    return frozenset(k.strip() for item in skip for k in item.split(",") if k.strip())


def print_findings(report: Report, output: str, waived: bool = True) -> None:
    """Waived findings (unless not `waived`), then problems (with their count), as validate prints them in text or
    github output."""
    if report.waived and waived:
        click.echo(format_problems(sorted(report.waived), output), err=True)
    if report.problems:
        click.echo(format_problems(sorted(report.problems), output), err=True)
        click.echo(f"endpointgen: {len(report.problems)} problem(s) found in rendered manifests", err=True)


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 120})
@click.option("--root", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="The GitOps repository to work on (default: the nearest folder upward with environments/, as "
                   "git finds its repository; else the current folder).")
@click.version_option(__version__, prog_name="endpointgen")
@click.pass_context
def cli(ctx: click.Context, root: Path | None) -> None:
    """Generate Kubernetes and Istio manifests for AksEndpoint-style scoring endpoints."""
    ctx.obj = root if root is not None else find_root(Path.cwd())


# --- spec-editing commands: one per AksEndpoint method -------------------------------------------------


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
