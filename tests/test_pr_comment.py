"""`diff --format markdown` always fits a GitHub comment: the summary whole, the manifest diff cut per file, and a
note on what was cut and where the rest is.

A real pull request (ten new endpoints) goes through the CLI; the size rule itself is checked on drawn diffs,
emoji included (GitHub counts characters; UTF-16 units are never fewer).
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Callable
from pathlib import Path

import yaml
from click.testing import Result
from conftest import PROJECT
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_edit_cli import BODY, base, git, ok  # noqa: F401 - base is a fixture

from generator.pr.comment import GITHUB_COMMENT_LIMIT, as_markdown, comment_size
from generator.pr.describe import EndpointChange
from generator.pr.diff import Diff, unified

Run = Callable[[list[str]], Result]
NOTE = re.compile(r"\n> \[!NOTE\]\n> Cut to fit a comment of at most ([\d,]+) characters: (\d+) of (\d+) file\(s\) "
                  r"of the manifest diff shown whole(?:, `([^`]+)` in part)?(?:, (\d+) left out)?\.\n"
                  r"(?:> Left out: (.*)\.\n)?> (.*)\n\Z")


def ten_new_endpoints(run_cli: Run) -> None:
    for i in range(10):
        ok(run_cli(["new", f"fraud-{i}", "--env", "prod", "--version-name", "gbm-v3", *BODY]),
           f"environments/prod/endpoints/fraud-{i}.yaml")


def run_diff(run_cli: Run, *more: str) -> str:
    result = run_cli(["diff", "--base", "HEAD", *more])
    assert result.exit_code == 0, result.stderr
    return result.stdout


def file_patches(text_diff: str) -> dict[str, str]:
    """The unified diff of each file, by path, from the text form's manifest part."""
    out = {}
    for patch in re.split(r"(?m)^(?=--- )", text_diff.split("\n\n", 1)[1]):
        if patch:
            old, new = re.match(r"--- (?:a/)?(.*)\n\+\+\+ (?:b/)?(.*)\n", patch).groups()
            out[new if new != "/dev/null" else old] = patch
    return out


def test_a_pull_request_of_ten_new_endpoints_fits_one_comment_and_says_what_it_cut(base: Path,
                                                                                   run_cli: Run) -> None:
    ten_new_endpoints(run_cli)
    full = run_diff(run_cli)
    markdown = run_diff(run_cli, "--format", "markdown")
    patches = file_patches(full)
    assert len(full) > 2 * GITHUB_COMMENT_LIMIT  # uncut, this pull request could never be posted
    assert comment_size(markdown) <= GITHUB_COMMENT_LIMIT

    summary, _, rest = markdown.partition("<details>")
    for i in range(10):  # the summary comes first, whole: every endpoint's words and pie
        section = re.search(rf"### fraud-{i} \(prod\)\n\n- new endpoint \(gbm-v3 100%\)\n(- .*\n)+\n```mermaid\n"
                            rf'pie title fraud-{i} \(prod\) after\n    "gbm-v3" : 100\n```\n', summary)
        assert section is not None, f"fraud-{i}"
    opening = re.match(rf"<summary>Manifest diff \({len(patches)} file\(s\)\)</summary>\n\n(`{{3,}})diff\n", rest)
    assert opening is not None
    block, closing, note = rest[opening.end():].partition(f"\n{opening.group(1)}\n\n</details>\n")
    assert closing, "the diff block is closed before the note"

    found = NOTE.search(note)
    assert found is not None, note
    limit, whole, total, in_part, left_out, names, where = found.groups()
    assert (limit, int(total)) == ("65,536", len(patches))
    assert int(whole) + (1 if in_part else 0) + int(left_out or 0) == len(patches)
    assert where == "`endpointgen diff --base HEAD` prints the full diff."
    shown = block + "\n"
    whole_files = [path for path, patch in patches.items() if patch in shown]
    assert len(whole_files) == int(whole)
    if in_part:  # the cut file: a prefix of its diff, then a line saying how many lines are missing
        patch = patches[in_part]
        cut = re.search(rf"^… (\d+) more line\(s\) of {re.escape(in_part)} left out here$", shown, re.M)
        assert cut is not None
        header = "".join(patch.splitlines(keepends=True)[:2])
        kept = shown[shown.index(header):cut.start()]
        assert patch.startswith(kept) and len(kept.splitlines()) + int(cut.group(1)) == len(patch.splitlines())
    for name in re.findall(r"`([^`]+)`", names or ""):  # the files named as left out are not in the block
        assert name in patches and f"b/{name}\n" not in shown


def test_the_full_diff_is_written_beside_and_linked_from_a_cut_comment(base: Path, run_cli: Run,
                                                                       tmp_path: Path) -> None:
    ten_new_endpoints(run_cli)
    url = "https://github.com/contoso/ml-endpoints/actions/runs/42#artifacts"
    markdown = run_diff(run_cli, "--format", "markdown", "--full-diff", str(tmp_path / "full.diff"),
                        "--full-diff-url", url, "--max-chars", "20000")
    assert (tmp_path / "full.diff").read_text(encoding="utf-8") == run_diff(run_cli)
    assert comment_size(markdown) <= 20_000
    assert markdown.endswith(f"\n> The full diff: [{url}](<{url}>).\n")


def test_a_comment_that_fits_is_not_cut(base: Path, run_cli: Run) -> None:
    ok(run_cli(["new", "fraud", "--env", "prod", "--version-name", "gbm-v3", *BODY]),
       "environments/prod/endpoints/fraud.yaml")
    markdown = run_diff(run_cli, "--format", "markdown")
    patches = file_patches(run_diff(run_cli))
    assert "[!NOTE]" not in markdown and "left out" not in markdown
    assert all(patch in markdown for patch in patches.values())


def test_a_link_that_could_break_the_markdown_is_refused(base: Path, run_cli: Run) -> None:
    for url in ["https://example.com/a) [x](javascript:alert(1)", "file:///etc/passwd", "https://a b"]:
        result = run_cli(["diff", "--base", "HEAD", "--format", "markdown", "--full-diff-url", url])
        assert result.exit_code == 2 and "--full-diff-url" in result.stderr, result.stderr


def test_a_limit_too_small_for_any_summary_is_a_usage_error(base: Path, run_cli: Run) -> None:
    result = run_cli(["diff", "--base", "HEAD", "--format", "markdown", "--max-chars", "100"])
    assert result.exit_code == 2 and "--max-chars" in result.stderr


# --- the size rule on drawn diffs -------------------------------------------------------------------------

text = st.text(st.characters(codec="utf-8", exclude_categories=["Cs"]), max_size=300)
lines = st.lists(text.map(lambda s: s.replace("\r", "")), max_size=40).map("\n".join)
paths = st.from_regex(r"rendered/prod/endpoints/[a-z]{1,12}/[a-z-]{1,40}\.yaml", fullmatch=True)
changes = st.lists(st.builds(EndpointChange, st.just("prod"), st.from_regex(r"[a-z]{1,20}", fullmatch=True),
                             st.lists(text, min_size=1, max_size=3),
                             st.dictionaries(st.from_regex(r"[a-z]{1,8}", fullmatch=True), st.integers(0, 100),
                                             max_size=3)),
                   max_size=40)
diffs = st.builds(Diff, changes, st.dictionaries(paths, st.tuples(lines, lines), max_size=30),
                  st.lists(text, max_size=2))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(diffs, st.integers(2048, 80_000), st.sampled_from([None, "https://example.com/runs/1#artifacts"]))
def test_every_comment_fits_and_keeps_what_fits_whole(d: Diff, max_chars: int, url: str | None) -> None:
    markdown, uncut = as_markdown(d, max_chars, url), as_markdown(d, 10**9)
    assert comment_size(markdown) <= max_chars
    summary, uncut_summary = (m.split("<details>")[0].split("\n> [!NOTE]\n")[0] for m in (markdown, uncut))
    assert uncut_summary.startswith(summary)  # the endpoints' sections: the first ones, whole, and a count of the rest
    if summary != uncut_summary:
        assert uncut_summary[len(summary):].startswith("### ")
        assert f"{uncut_summary.count(chr(10) + '### ') - summary.count(chr(10) + '### ')} more described change(s)" \
               " and the manifest diff" in markdown
    if comment_size(uncut) <= max_chars:
        assert markdown == uncut and "[!NOTE]" not in markdown
    else:
        assert "\n> [!NOTE]\n> Cut to fit a comment of at most" in markdown
    if "<details>" in markdown:
        assert markdown.count("</details>") >= 1 and "</summary>\n\n" in markdown


def test_a_summary_too_long_for_a_comment_keeps_whole_endpoints_and_counts_the_rest() -> None:
    d = Diff([EndpointChange("prod", f"endpoint-{i:04}", [f"new endpoint (v1 100%) {'x' * 40}"], {}, {"v1": 100})
              for i in range(2000)], {"rendered/prod/x.yaml": ("", "a: 1\n")}, [], "origin/main")
    markdown = as_markdown(d)
    assert comment_size(markdown) <= GITHUB_COMMENT_LIMIT
    shown = re.findall(r"^### (endpoint-\d+) \(prod\)$", markdown, re.M)
    assert shown == [f"endpoint-{i:04}" for i in range(len(shown))] and 100 < len(shown) < 2000
    assert f"{2000 - len(shown)} more described change(s) and the manifest diff of 1 file(s) are not shown" in markdown
    assert "<details>" not in markdown and unified("rendered/prod/x.yaml", "", "a: 1\n") not in markdown
    assert markdown.endswith("> `endpointgen diff --base origin/main` prints the full diff.\n")


def test_the_shipped_workflow_keeps_the_full_diff_it_links(base: Path, run_cli: Run, tmp_path: Path) -> None:
    """The workflow's diff step, run as GitHub would run it: the comment file it posts, the artifact it keeps."""
    workflow = yaml.safe_load((PROJECT / ".github/workflows/endpointgen-pr.yaml").read_text(encoding="utf-8"))
    steps = workflow["jobs"]["endpoints"]["steps"]
    [describe] = [s for s in steps if " diff " in s.get("run", "")]
    [upload] = [s for s in steps if s.get("uses", "").startswith("actions/upload-artifact@")]
    [post] = [s for s in steps if "gh pr comment" in s.get("run", "")]
    expressions = {"github.base_ref": "main", "github.server_url": "https://github.com",
                   "github.repository": "contoso/ml-endpoints", "github.run_id": "42"}
    command = re.sub(r"\$\{\{ ([\w.]+) \}\}", lambda m: expressions[m.group(1)], describe["run"])
    *words, redirect, comment_file = shlex.split(command)
    assert words[0] == ".venv/bin/endpointgen" and redirect == ">"
    git(base, "branch", "-q", "-f", "origin/main")  # the workflow compares with origin/<base branch>
    ten_new_endpoints(run_cli)
    arguments = [tmp_path / w if w == upload["with"]["path"] else w for w in words[1:]]
    result = run_cli([str(a) for a in arguments])
    assert result.exit_code == 0, result.stderr
    markdown = result.stdout
    assert f"--body-file {comment_file}" in post["run"]
    assert (tmp_path / upload["with"]["path"]).read_text(encoding="utf-8").count("\n+++ ") > 100
    assert comment_size(markdown) <= GITHUB_COMMENT_LIMIT
    assert markdown.endswith("> The full diff: [https://github.com/contoso/ml-endpoints/actions/runs/42#artifacts]"
                             "(<https://github.com/contoso/ml-endpoints/actions/runs/42#artifacts>).\n")
