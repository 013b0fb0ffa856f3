"""Benchmark harness for issue 6: time the endpointgen CLI on a synthetic repository (a measurement, not a test).

Generates a synthetic GitOps repository (bench/synth.py), then times each step as a subprocess of the venv's
`endpointgen` CLI, --runs times, and reports the median: cold render, render with nothing changed, render after a
one-endpoint change, check, validate --rendered; then the anchors on the same output: `kubectl kustomize` of every
Flux Kustomization path and `kubernetes-validate` on a seeded sample of the built-in-kind files. Prints a table and
writes everything, with the targets and their pass/fail, as JSON. Exits 0 when targets are missed; non-zero only
when a command fails (its stderr is printed).

    make bench [BENCH_ARGS="--quick"]
    .venv/bin/python bench/run.py [--endpoints 1000] [--versions 3] [--envs dev,staging,prod] [--runs 3]
                                  [--out DIR] [--json bench/results.json] [--quick]

The work is split over the modules beside this entry point: steps.py (generate, time each step), process.py (run a
command, measure its time and memory), repo_ops.py (the synthetic repository's files), anchors.py (kustomize,
kubernetes-validate, kubeconform), report.py (ratios, targets, table), machine.py (machine, code and tool versions).
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # bench/: synth.py and the modules below

from machine import PROJECT  # noqa: E402
from process import CommandFailed  # noqa: E402
from repo_ops import old_outputs  # noqa: E402
from report import table  # noqa: E402
from steps import measure  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--endpoints", type=int, default=None, help="endpoints per environment (default 1000; "
                                                                     "--quick: 50)")
    parser.add_argument("--versions", type=int, default=3, choices=range(1, 7))
    parser.add_argument("--envs", default="dev,staging,prod")
    parser.add_argument("--runs", type=int, default=None, help="runs per step, median reported (default 3; "
                                                               "--quick: 1)")
    parser.add_argument("--out", type=Path, default=None, help="generate the repository here (kept) instead of "
                                                               "in a temporary directory (removed)")
    parser.add_argument("--json", type=Path, default=PROJECT / "bench" / "results.json",
                        help="where to write the results (default bench/results.json)")
    parser.add_argument("--quick", action="store_true", help="small and fast: 50 endpoints, 1 run, sample of 50")
    parser.add_argument("--kv-sample", type=int, default=None,
                        help="files for the kubernetes-validate anchor (default 200; --quick: 50)")
    parser.add_argument("--seed", type=int, default=6, help="seed of the kubernetes-validate sample")
    parser.add_argument("--schema-location", default=None,
                        help="CRD schemas for validate (default schema/crds, vendored in the project; "
                             "when missing, validate runs with --ignore-missing-schemas)")
    args = parser.parse_args(argv)
    args.endpoints = args.endpoints or (50 if args.quick else 1000)
    args.runs = args.runs or (1 if args.quick else 3)
    args.kv_sample = args.kv_sample or (50 if args.quick else 200)
    if args.runs < 1 or args.endpoints < 1:
        parser.error("--runs and --endpoints must be at least 1")

    tmp = None
    if args.out is None:
        tmp = tempfile.mkdtemp(prefix="endpointgen-bench-")
        repo = Path(tmp) / "repo"
    else:
        repo = args.out.resolve()
    try:
        results = measure(args, repo)
    except CommandFailed as failure:
        print(f"bench: FAILED: {' '.join(failure.command)} exited {failure.sample.returncode}", file=sys.stderr)
        print(failure.sample.stderr or failure.sample.stdout, file=sys.stderr)
        return 1
    finally:
        if args.out is not None:
            shutil.rmtree(old_outputs(repo), ignore_errors=True)
        if tmp:
            shutil.rmtree(tmp, ignore_errors=True)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    print(table(results))
    print(f"\nresults: {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
