"""`diff --format markdown`: the pull-request comment, kept within the size GitHub accepts.

The summary (warnings, each endpoint's change in words, its traffic before and after) comes first and stays
whole; the manifest diff follows, each file whole while it fits, the first that does not cut at a line, the
rest named as left out, with a link to the full diff.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from .describe import EndpointChange
from .diff import Diff, no_endpoint_changes, unified
from .platform import PlatformChange

GITHUB_COMMENT_LIMIT = 65_536  # GitHub refuses a comment body longer than this (422 "body is too long")
MIN_CHARS = 2_048  # room for the heading, the notes and one endpoint's summary
NOTE_RESERVE = 600  # the closing note's words and numbers, links and names come on top


def comment_size(text: str) -> int:
    """Characters as GitHub counts them, never fewer: UTF-16 code units, so an emoji counts as two."""
    return len(text.encode("utf-16-le")) // 2


def as_markdown(d: Diff, max_chars: int = GITHUB_COMMENT_LIMIT, full_diff_url: str | None = None) -> str:
    """A pull-request comment of at most `max_chars`: per endpoint the change in words and the traffic split
    before and after, then the manifest diff folded in a <details> block, cut to fit and saying what it cut."""
    head = "\n".join(_heading(d)) + "\n"
    patches = [(path, unified(path, a, b)) for path, (a, b) in d.files.items()]
    sections = [_section(c) for c in d.described]
    fence = "`" * max(3, 1 + max((len(m) for _, p in patches for m in re.findall(r"`+", p)), default=0))
    opening = f"<details><summary>Manifest diff ({len(d.files)} file(s))</summary>\n\n{fence}diff\n"
    closing = f"{fence}\n\n</details>\n"
    whole = head + "".join(sections) + (opening + "".join(p for _, p in patches) + closing if patches else "")
    if comment_size(whole) <= max_chars:
        return whole
    reserve = NOTE_RESERVE + len(full_diff_url or "") + max((len(p) for p, _ in patches), default=0)
    sections, left_out = _fit(sections, max_chars - comment_size(head) - reserve)
    out = head + "".join(sections)
    if left_out:  # the summary alone is too long: no room for any manifest diff
        return out + _note(f"{left_out} more described change(s) and the manifest diff of {len(d.files)} "
                           "file(s) are not shown here", [], d, full_diff_url, max_chars, max_chars - comment_size(out))
    room = max_chars - comment_size(out + opening + closing) - reserve
    shown, cut, omitted = _cut_patches(patches, room)
    out += opening + shown + closing
    whole_files = len(patches) - len(omitted) - (1 if cut else 0)
    summary = f"{whole_files} of {len(patches)} file(s) of the manifest diff shown whole" + (
        f", `{cut}` in part" if cut else "") + (f", {len(omitted)} left out" if omitted else "")
    return out + _note(summary, omitted, d, full_diff_url, max_chars, max_chars - comment_size(out))


def _heading(d: Diff) -> list[str]:
    out = ["## endpointgen: what this change does", ""]
    if d.warnings:
        out += ["> [!WARNING]", *(f"> {_inline(w)}  " for w in d.warnings), ""]
    if not d.changes:
        words = no_endpoint_changes(d)
        out.append(words[0].upper() + words[1:] + ".")
    return out


def _inline(words: str) -> str:
    """Words from specs as one line of markdown that cannot open a block or an HTML tag (a spec string is hostile)."""
    return " ".join(words.split()).replace("&", "&amp;").replace("<", "&lt;")


def _section(c: EndpointChange | PlatformChange) -> str:
    out = [f"### {_inline(c.title)}", ""] + [f"- {_inline(s)}" for s in c.sentences] + [""]
    if c.before != c.after:
        for label, split in (("before", c.before), ("after", c.after)):
            if split:
                out += ["```mermaid", f"pie title {c.title} {label}"]
                out += [f'    "{name}" : {weight}' for name, weight in split.items()]
                out += ["```", ""]
    return "\n".join(out) + "\n"


def _fit(sections: Sequence[str], room: int) -> tuple[list[str], int]:
    """The sections whole, in order, while they fit in `room`; and how many did not."""
    if sum(comment_size(s) for s in sections) <= room:
        return list(sections), 0
    kept: list[str] = []
    for section in sections:
        if comment_size(section) > room:
            break
        kept.append(section)
        room -= comment_size(section)
    return kept, len(sections) - len(kept)


def _cut_patches(patches: Sequence[tuple[str, str]], room: int) -> tuple[str, str | None, list[str]]:
    """Each file's diff whole while it fits in `room`; the first that does not, cut at a line with a line saying
    how much of it was left out; the paths of the rest."""
    shown: list[str] = []
    for index, (path, patch) in enumerate(patches):
        if comment_size(patch) <= room:
            shown.append(patch)
            room -= comment_size(patch)
            continue
        lines = patch.splitlines(keepends=True)
        room -= 80 + len(path)  # the line saying what was cut
        kept = 0
        while kept < len(lines) and comment_size(lines[kept]) <= room:
            room -= comment_size(lines[kept])
            kept += 1
        if kept < 4:  # not even the headers, a hunk header and one line of it: leave the whole file out
            return "".join(shown), None, [p for p, _ in patches[index:]]
        shown += lines[:kept] + [f"… {len(lines) - kept} more line(s) of {path} left out here\n"]
        return "".join(shown), path, [p for p, _ in patches[index + 1:]]
    return "".join(shown), None, []


def _note(summary: str, omitted: Sequence[str], d: Diff, full_diff_url: str | None, max_chars: int,
          room: int) -> str:
    """The closing note: what was cut, which files were left out (as many names as fit) and where the rest is."""
    where = (f"The full diff: [{full_diff_url}](<{full_diff_url}>)." if full_diff_url
             else f"`endpointgen diff --base {d.base}` prints the full diff.")
    first = f"\n> [!NOTE]\n> Cut to fit a comment of at most {max_chars:,} characters: {summary}."
    last = f"\n> {where}\n"
    room -= comment_size(first + last) + 40  # "\n> Left out: ... and N more."
    names: list[str] = []
    for path in omitted:
        if comment_size(path) + 4 > room:
            break
        names.append(f"`{path}`")
        room -= comment_size(path) + 4
    more = len(omitted) - len(names)
    listing = ", ".join(names) + (f"{' and ' if names else ''}{more} more" if more else "")
    return first + (f"\n> Left out: {listing}." if omitted else "") + last
