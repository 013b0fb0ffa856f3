"""How many rendered objects per second check_environment validates (a measurement, not a test).

Renders the example environments in memory, replicates their objects (renamed, so the cross-object rules see
distinct endpoints) to about --objects objects, then times check_environment with the vendored CRD schemas (schema/crds):
JSON Schema, API-server rules and policies, as `endpointgen validate` runs them.

    .venv/bin/python bench/validator_rate.py [--objects 5000] [--repeat 3]
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import yaml

PROJECT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(PROJECT))

from generator.check.manifests import Options, RenderedObject, Report, check_environment  # noqa: E402
from generator.pipeline.generate import plan  # noqa: E402

LOADER: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
CRD_SCHEMAS = Path(os.environ.get("ENDPOINTGEN_SCHEMA_LOCATION", PROJECT / "schema" / "crds"))


def example_objects() -> list[tuple[str, RenderedObject]]:
    """(kubernetes version, object) for every object the example environments render."""
    with tempfile.TemporaryDirectory() as tmp:
        shutil.copytree(PROJECT / "environments", Path(tmp) / "environments")
        p = plan(Path(tmp))
    versions = {env.name: env.settings["kubernetes_version"] for env in p.repo.environments}
    return [(versions[env], RenderedObject(m.path, m.text, m.obj)) for env, found in p.manifests.items()
            for m in found]


def replicate(objects: list[tuple[str, RenderedObject]], wanted: int) -> list[tuple[str, RenderedObject]]:
    """Copies of the objects, each copy in its own namespace, until there are about `wanted`."""
    out: list[tuple[str, RenderedObject]] = []
    copy_number = 0
    while len(out) < wanted:
        for version, o in objects:
            text = o.text
            namespace = (o.obj.get("metadata") or {}).get("namespace")
            if namespace:  # the object and the Service hosts it routes to
                text = text.replace(f"namespace: {namespace}\n", f"namespace: {namespace}-{copy_number}\n")
                text = text.replace(f".{namespace}.svc.", f".{namespace}-{copy_number}.svc.")
            out.append((version, RenderedObject(f"copy-{copy_number}/{o.path}", text, yaml.load(text, Loader=LOADER))))
        copy_number += 1
    return out[:wanted]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--objects", type=int, default=5000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    objects = replicate(example_objects(), args.objects)
    by_version: dict[str, list[RenderedObject]] = {}
    for version, o in objects:
        by_version.setdefault(version, []).append(o)
    best = float("inf")
    for _ in range(args.repeat):
        report = Report()
        start = time.perf_counter()
        for version, group in by_version.items():
            check_environment(group, version, Options(locations=[str(CRD_SCHEMAS)]), {}, report)
        best = min(best, time.perf_counter() - start)
    print(f"{report.objects} objects, {len(report.problems)} problems (expected 0); "
          f"best of {args.repeat}: {best:.2f} s = {report.objects / best:,.0f} objects/second")


if __name__ == "__main__":
    main()
