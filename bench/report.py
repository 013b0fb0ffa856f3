"""The targets: ratios to the anchors, pass or miss for each target, and the printed table."""

from __future__ import annotations

from typing import Any

from anchors import KUBECONFORM_CORES, KUBECONFORM_RATE

TARGET_COLD_RENDER_PLUS_VALIDATE_S = 10.0
TARGET_INCREMENTAL_RENDER_S = 0.5
TARGET_PEAK_MEMORY_MB = 300.0
TARGET_VALIDATE_RATE = 7_500  # objects/second: kubeconform's published rate
TARGET_VALIDATE_VS_KUBERNETES_VALIDATE = 100.0  # times faster per object


def ratios_and_targets(steps: dict[str, Any], anchors: dict[str, Any], machine: dict[str, Any]) -> dict[str, Any]:
    validate_rate = steps["validate"]["objects_per_s"]
    kv_rate = anchors["kubernetes_validate"].get("objects_per_s")
    ratios = {
        "validate_vs_kubernetes_validate_per_object": round(validate_rate / kv_rate, 2) if kv_rate else None,
        "validate_vs_kubeconform_published": round(validate_rate / KUBECONFORM_RATE, 3),
        "validate_per_core_vs_kubeconform_per_core": round(
            (validate_rate / machine["nproc"]) / (KUBECONFORM_RATE / KUBECONFORM_CORES), 3),
    }
    kustomize = anchors["kustomize"]
    if "total" in kustomize:
        ratios["cold_render_vs_kustomize_total_wall"] = round(
            steps["cold_render"]["median"]["wall_s"] / kustomize["total"]["median"]["wall_s"], 2)
    cold_plus_validate = steps["cold_render"]["median"]["wall_s"] + steps["validate"]["median"]["wall_s"]
    peak = {k: s["median"]["peak_mb"] for k, s in steps.items()}
    worst = max(peak, key=lambda k: peak[k])

    def target(value: float, limit: float, unit: str, what: str, at_least: bool = False) -> dict[str, Any]:
        return {"what": what, "value": round(value, 3), "target": limit, "unit": unit,
                "at_least": at_least, "pass": value >= limit if at_least else value <= limit}

    targets = {
        "cold_render_validate_wall": target(steps["cold_render"]["median"]["wall_s"],
                                            TARGET_COLD_RENDER_PLUS_VALIDATE_S, "s",
                                            "median cold render (renders and checks every object, one pass), "
                                            "wall"),
        "cold_render_plus_validate_wall": target(cold_plus_validate, TARGET_COLD_RENDER_PLUS_VALIDATE_S, "s",
                                                 "median cold render + median validate --rendered (two commands), "
                                                 "wall"),
        "validate_rate": target(validate_rate, TARGET_VALIDATE_RATE, "objects/s",
                                "validate --rendered, objects per second (kubeconform's published rate)",
                                at_least=True),
        "validate_vs_kubernetes_validate": target(ratios["validate_vs_kubernetes_validate_per_object"] or 0,
                                                  TARGET_VALIDATE_VS_KUBERNETES_VALIDATE, "x",
                                                  "validate --rendered vs kubernetes-validate, per object",
                                                  at_least=True),
        "nochange_render_wall": target(steps["nochange_render"]["median"]["wall_s"], TARGET_INCREMENTAL_RENDER_S,
                                       "s", "median render with nothing changed, wall"),
        "onechange_render_wall": target(steps["onechange_render"]["median"]["wall_s"],
                                        TARGET_INCREMENTAL_RENDER_S, "s", "median render after one change, wall"),
        "peak_memory": target(peak[worst], TARGET_PEAK_MEMORY_MB, "MB",
                              f"largest median peak memory of the endpointgen steps ({worst}); the larger of "
                              "ru_maxrss (largest process) and the process tree's sampled PSS sum"),
    }
    return {"ratios": ratios, "targets": targets}


def table(results: dict[str, Any]) -> str:
    m, sizes = results["machine"], results["sizes"]
    lines = [f"endpointgen benchmark, {m['date']}: {sizes['endpoints']} endpoints x {sizes['versions']} versions x "
             f"{len(sizes['environments'])} environments = {sizes['objects']} objects; median of {sizes['runs']} "
             f"run(s); {m['nproc']} CPU(s), Python {m['python']}, endpointgen {m['endpointgen']} "
             f"(commit {m['git_commit']}{', generator/ modified' if m['generator_dirty'] else ''}); "
             f"load average {m['load_average_at_start']} at start, {m.get('load_average_at_end')} at end",
             "",
             f"{'step':<50} {'wall s':>8} {'CPU s':>8} {'peak MB':>8} {'objects/s':>10}  runs (wall s)"]
    rule = "-" * len(lines[-1])
    lines.append(rule)

    def row(label: str, median: dict[str, float], rate: float | None, runs: list[dict[str, float]]) -> None:
        lines.append(f"{label:<50} {median['wall_s']:>8.2f} {median['cpu_s']:>8.2f} {median['peak_mb']:>8.0f} "
                     f"{(f'{rate:,.0f}' if rate else '-'):>10}  {' '.join(format(r['wall_s'], '.2f') for r in runs)}")

    for key, step in results["steps"].items():
        row(f"{step['label']} ({key})", step["median"], step["objects_per_s"], step["runs"])
    lines.append(rule)
    kustomize = results["anchors"]["kustomize"]
    if "skipped" in kustomize:
        lines.append(f"{'f. kubectl kustomize':<50} skipped: {kustomize['skipped']}")
    else:
        row(f"f. kubectl kustomize, {kustomize['paths']} path(s), total", kustomize["total"]["median"],
            kustomize["objects_per_s"], kustomize["total"]["runs"])
        per = kustomize["per_path_wall_s"]
        lines.append(f"{'   per path: max / median':<50} {per['max']:>8.2f} / {per['median']:.2f} s "
                     f"(slowest {per['slowest_path']}); {kustomize['objects']} objects built")
    kv = results["anchors"]["kubernetes_validate"]
    row(f"f. kubernetes-validate, SAMPLE of {kv['objects']} files", kv["median"], kv["objects_per_s"], kv["runs"])
    lines.append(f"{'   sample':<50} {kv['objects']} of {kv['population']} built-in-kind files, "
                 f"seed {kv['seed']}: {', '.join(f'{k} {n}' for k, n in sorted(kv['sample_kinds'].items()))}")
    kc = results["anchors"]["kubeconform_published"]
    lines.append(f"{'   kubeconform (published, not run)':<50} {kc['seconds']:>8.2f} {'-':>8} {'-':>8} "
                 f"{kc['objects_per_s']:>10,}  ({kc['objects']:,} resources, {kc['cores']} cores)")
    lines.append("")
    r = results["ratios"]
    if r["validate_vs_kubernetes_validate_per_object"] is not None:
        lines.append(f"validate vs kubernetes-validate, per object: {r['validate_vs_kubernetes_validate_per_object']}"
                     f"x {'faster' if r['validate_vs_kubernetes_validate_per_object'] >= 1 else '(slower)'}"
                     " (endpointgen: schema + API-server rules + policies on all kinds; kubernetes-validate: "
                     "schema of built-in kinds, on a sample)")
    lines.append(f"validate vs kubeconform's published 7,500 objects/s: {r['validate_vs_kubeconform_published']}x; "
                 f"per core ({m['nproc']} here vs 4): {r['validate_per_core_vs_kubeconform_per_core']}x")
    if "cold_render_vs_kustomize_total_wall" in r:
        lines.append(f"cold render wall / kubectl kustomize total wall: {r['cold_render_vs_kustomize_total_wall']}x")
    lines.append("")
    lines.append("targets:")
    for t in results["targets"].values():
        lines.append(f"  {'PASS' if t['pass'] else 'MISS'}  {t['what']}: {t['value']:,.2f} {t['unit']} "
                     f"(target {'>=' if t.get('at_least') else '<='} {t['target']:,g} {t['unit']})")
    if results["notes"]:
        lines.append("")
        lines += [f"note: {n}" for n in results["notes"]]
    return "\n".join(lines)
