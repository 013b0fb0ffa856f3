"""Human and machine views of an endpoint's traffic split."""

from __future__ import annotations

import json

from .model import Endpoint
from .traffic import route_weights


def _roles(ep: Endpoint) -> list[str]:
    return [
        ", ".join(role for role, on in (("default", v.is_default),
                                         ("control", v.settings["is_control_version_type"])) if on) or "-"
        for v in ep.versions
    ]


def effective_table(ep: Endpoint) -> str:
    """A fixed-width table: version, role, traffic_percentile as written, effective share, route weight."""
    weights = route_weights([v.share for v in ep.versions])
    rows = [("VERSION", "ROLE", "TRAFFIC_PERCENTILE", "EFFECTIVE", "ROUTE_WEIGHT")]
    for v, role, weight in zip(ep.versions, _roles(ep), weights):
        written = v.spec.get("traffic_percentile")
        rows.append((v.name, role, "-" if written is None else f"{written}", f"{v.share.normalize():f}%", str(weight)))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = [f"endpoint {ep.name} (environment {ep.env.name}, namespace {ep.namespace})"]
    lines += ["  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in rows]
    return "\n".join(lines)


def effective_json(ep: Endpoint) -> str:
    """The same as JSON, for scripts."""
    weights = route_weights([v.share for v in ep.versions])
    versions = [
        {"version_name": v.name, "is_default": v.is_default,
         "is_control_version_type": v.settings["is_control_version_type"],
         "traffic_percentile": v.spec.get("traffic_percentile"),
         "effective_percent": float(v.share), "route_weight": w}
        for v, w in zip(ep.versions, weights)
    ]
    return json.dumps({"endpoint": ep.name, "environment": ep.env.name, "versions": versions}, indent=2)
