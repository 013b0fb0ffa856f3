"""The benchmark itself: generate the repository, time each endpointgen step, then the anchors and the targets."""

from __future__ import annotations

import argparse
import os
import re
import shutil
from pathlib import Path
from typing import Any

import synth
from anchors import kubeconform_published_anchor, kubernetes_validate_anchor, kustomize_anchor
from machine import PROJECT, code_fingerprint, find_tool, machine_info
from process import Sample, checked, log, median_of
from repo_ops import change_one_spec, count_objects, files_written, move_outputs_aside, old_outputs
from report import ratios_and_targets

STEPS = {  # key: label in the table
    "cold_render": "a. render, cold (renders and checks every object)",
    "nochange_render": "b. render, nothing changed",
    "onechange_render": "c. render, one spec changed",
    "check": "d. check",
    "validate": "e. validate --rendered",
}


def step_result(samples: list[Sample], command: list[str], objects: int, **extra: Any) -> dict[str, Any]:
    median = median_of(samples)
    result = {"label": STEPS.get(extra.pop("key", ""), ""), "command": command,
              "runs": [s.numbers() for s in samples], "median": median,
              "objects": objects, "objects_per_s": round(objects / median["wall_s"], 1) if median["wall_s"] else None}
    result.update(extra)
    return result


def measure(args: argparse.Namespace, repo: Path) -> dict[str, Any]:
    endpointgen = find_tool("endpointgen")
    kubernetes_validate = find_tool("kubernetes-validate")
    kubectl = shutil.which("kubectl")
    env = {k: v for k, v in os.environ.items() if k != "ENDPOINTGEN_SCHEMA_LOCATION"}
    envs = args.envs.split(",")
    eg = [str(endpointgen), "--root", str(repo)]
    notes: list[str] = []
    machine = machine_info(endpointgen, kubectl, kubernetes_validate)

    log(f"bench: generating {args.endpoints} endpoints x {args.versions} versions x {len(envs)} environments "
        f"into {repo}")
    repo.mkdir(parents=True, exist_ok=True)
    synth.generate(repo, args.endpoints, args.versions, envs)

    steps: dict[str, dict[str, Any]] = {}
    schemas = Path(args.schema_location) if args.schema_location else PROJECT / "schema" / "crds"
    if schemas.is_dir():
        schema_args = ["--schema-location", str(schemas)]
        schema_note = f"CRD schemas from {schemas}"
    else:
        schema_args = ["--ignore-missing-schemas"]
        schema_note = (f"no CRD schemas at {schemas}: render and validate ran with --ignore-missing-schemas (CRD "
                       "kinds unchecked)")
        notes.append(schema_note)
    render = eg + ["render", *schema_args]  # render checks every object it renders, with these schemas

    # a. cold render
    samples = []
    trash = old_outputs(repo)
    notes.append("before each cold render the previous outputs are moved aside, not deleted (deleting ~50k files "
                 "makes a filesystem mounted with discard spend seconds of kernel time in the writes that follow), "
                 "and the file system is synced (untimed), so that no run pays for an earlier run's writeback")
    for i in range(args.runs):
        move_outputs_aside(repo, trash)
        log(f"bench: cold render, run {i + 1}/{args.runs}")
        samples.append(checked(render, repo, env))
    counts = count_objects(repo)
    objects = counts["total"]
    steps["cold_render"] = step_result(samples, render, objects, key="cold_render",
                                       files_written=[files_written(s.stdout) for s in samples])

    # b. render, nothing changed
    samples = []
    for i in range(args.runs):
        log(f"bench: render with nothing changed, run {i + 1}/{args.runs}")
        samples.append(checked(render, repo, env))
    steps["nochange_render"] = step_result(samples, render, objects, key="nochange_render",
                                           files_written=[files_written(s.stdout) for s in samples])
    if any(steps["nochange_render"]["files_written"]):
        notes.append("render with nothing changed still wrote files: "
                     f"{steps['nochange_render']['files_written']}")

    # c. render after changing one endpoint spec
    samples, changes = [], []
    for i in range(args.runs):
        changes.append(change_one_spec(repo, envs[0], i))
        log(f"bench: render after one change ({changes[-1]}), run {i + 1}/{args.runs}")
        samples.append(checked(render, repo, env))
    written = [files_written(s.stdout) for s in samples]
    steps["onechange_render"] = step_result(samples, render, objects, key="onechange_render",
                                            changes=changes, files_written=written)
    if any(w == 0 for w in written):
        notes.append(f"a one-change render wrote no file (files written per run: {written})")
    objects = count_objects(repo)["total"]

    # d. check
    samples = []
    for i in range(args.runs):
        log(f"bench: check, run {i + 1}/{args.runs}")
        samples.append(checked(eg + ["check"], repo, env))
    steps["check"] = step_result(samples, eg + ["check"], objects, key="check")

    # e. validate --rendered
    validate = eg + ["validate", "--rendered", "--summary", *schema_args]
    samples = []
    for i in range(args.runs):
        log(f"bench: validate --rendered, run {i + 1}/{args.runs}")
        samples.append(checked(validate, repo, env))
    summary = re.search(r"Summary: (\d+) objects", samples[-1].stdout + samples[-1].stderr)
    reported = int(summary.group(1)) if summary else None
    steps["validate"] = step_result(samples, validate, objects, key="validate", schemas=schema_note,
                                    objects_reported_by_validate=reported)
    if reported is not None and reported != objects:
        notes.append(f"validate --summary reports {reported} objects; the file count is {objects}")

    anchors = {"kustomize": kustomize_anchor(args, repo, env, kubectl, notes),
               "kubernetes_validate": kubernetes_validate_anchor(args, repo, env, kubernetes_validate),
               "kubeconform_published": kubeconform_published_anchor()}
    machine["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()] if hasattr(os, "getloadavg") else None
    if code_fingerprint() != machine["code_fingerprint"]:
        notes.append("generator/ or templates/ changed during the run: the steps may have measured different code")
        machine["code_fingerprint_at_end"] = code_fingerprint()
    return {"machine": machine,
            "sizes": {"endpoints": args.endpoints, "versions": args.versions, "environments": envs,
                      "endpoint_specs": args.endpoints * len(envs), "objects": objects,
                      "objects_rendered": counts["rendered"], "objects_clusters": counts["clusters"],
                      "runs": args.runs, "repo": str(repo)},
            "steps": steps, "anchors": anchors, **ratios_and_targets(steps, anchors, machine), "notes": notes}
