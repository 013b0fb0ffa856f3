"""The pull-request commands: `check --base` (rules that need history) and `diff --base` (what a change does).

Each test commits the rendered example repo as the base, changes it with the editing commands (or by hand
where the commands rightly refuse), renders, and compares with the base commit.
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import Result
from conftest import line_of, replace_in, spec_path
from test_edit_cli import BODY, PROD_IMAGE, base, git, ok  # noqa: F401 - base is a fixture

Run = Callable[[list[str]], Result]
PROD_SENTIMENT = "environments/prod/endpoints/sentiment.yaml"


def render(run_cli: Run) -> None:
    result = run_cli(["render"])
    assert result.exit_code == 0, result.stderr


def commit(root: Path, run_cli: Run, message: str) -> None:
    """Render and commit the working tree: it becomes HEAD, the next base."""
    render(run_cli)
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", message)


def check(run_cli: Run, ref: str = "HEAD", *more: str) -> Result:
    return run_cli(["check", "--base", ref, *more])


def problem_lines(result: Result) -> list[str]:
    """The path:line:col lines of a failed check."""
    return [line for line in result.stderr.splitlines() if re.match(r"^[^:\s]+:\d+:\d+: ", line)]


# --- check --base ---------------------------------------------------------------------------------

@pytest.mark.parametrize("ref", ["HEAD", "main"])
def test_check_passes_on_an_unchanged_repo(base: Path, run_cli: Run, ref: str) -> None:
    result = check(run_cli, ref)
    assert result.exit_code == 0, result.stderr
    assert result.stdout == f"ok: rendered output is current and nothing deployed on {ref} is broken\n"
    assert result.stderr == ""


def test_check_accepts_a_commit_id(base: Path, run_cli: Run) -> None:
    assert check(run_cli, git(base, "rev-parse", "HEAD").strip()).exit_code == 0


def test_check_fails_when_an_endpoint_property_changes(base: Path, run_cli: Run) -> None:
    path = spec_path(base, "sentiment", "prod")
    replace_in(path, "owner: reviews-ml@contoso.com", "owner: someone@contoso.com")  # the commands refuse this
    render(run_cli)
    result = check(run_cli)
    assert result.exit_code == 1
    assert problem_lines(result) == [
        f"{PROD_SENTIMENT}:{line_of(path, 'owner:')}:10: properties.owner: property 'owner' changed from "
        "'reviews-ml@contoso.com' (on HEAD) to 'someone@contoso.com'; properties never change once deployed"]
    assert result.stderr.splitlines()[-1].endswith("1 change(s) that break deployed endpoints")


def test_check_fails_when_an_endpoint_property_disappears(base: Path, run_cli: Run) -> None:
    replace_in(spec_path(base, "sentiment", "prod"), "properties:\n  owner: reviews-ml@contoso.com\n", "")
    render(run_cli)
    result = check(run_cli)
    assert result.exit_code == 1
    [line] = problem_lines(result)
    assert re.fullmatch(rf"{PROD_SENTIMENT}:\d+:\d+: properties: property 'owner' \(= 'reviews-ml@contoso.com' on "
                        r"HEAD\) was removed; properties may gain keys but never lose or change one", line)


def test_check_fails_when_a_version_property_changes(base: Path, run_cli: Run) -> None:
    ok(run_cli(["update-version", "sentiment", "green", "--env", "prod", "--property", "experiment=42"]),
       PROD_SENTIMENT)
    commit(base, run_cli, "green gets a property")
    path = spec_path(base, "sentiment", "prod")
    replace_in(path, "experiment: '42'", "experiment: '43'")
    render(run_cli)
    result = check(run_cli)
    assert result.exit_code == 1
    assert problem_lines(result) == [
        f"{PROD_SENTIMENT}:{line_of(path, 'experiment:')}:19: versions[1].properties.experiment: property "
        "'experiment' changed from '42' (on HEAD) to '43'; properties never change once deployed"]


def test_check_fails_when_an_endpoint_namespace_changes(base: Path, run_cli: Run) -> None:
    path = spec_path(base, "sentiment", "prod")
    replace_in(path, "name: sentiment\n", "name: sentiment\nnamespace: reviews\n")
    render(run_cli)
    result = check(run_cli)
    assert result.exit_code == 1
    assert problem_lines(result) == [
        f"{PROD_SENTIMENT}:{line_of(path, 'namespace:')}:12: namespace: namespace changed from 'ml-endpoints' (on "
        "HEAD) to 'reviews'; an endpoint's namespace cannot change: create a new endpoint instead"]


def test_check_fails_when_the_environment_namespace_moves_its_endpoints(base: Path, run_cli: Run) -> None:
    replace_in(base / "environments" / "dev" / "environment.yaml", "namespace: ml-endpoints-dev",
               "namespace: ml-dev")
    render(run_cli)
    result = check(run_cli)
    assert result.exit_code == 1
    assert [line.split(": ", 1)[0] for line in problem_lines(result)] == [
        "environments/dev/endpoints/image-classifier.yaml:2:7", "environments/dev/endpoints/sentiment.yaml:2:7"]
    assert check(run_cli, "HEAD", "--env", "prod").exit_code == 0


def test_check_allows_adding_properties(base: Path, run_cli: Run) -> None:
    ok(run_cli(["update", "sentiment", "--env", "prod", "--property", "tier=gold"]), PROD_SENTIMENT)
    ok(run_cli(["update-version", "sentiment", "green", "--env", "prod", "--property", "experiment=42"]),
       PROD_SENTIMENT)
    render(run_cli)
    assert check(run_cli).exit_code == 0


def test_check_allows_deleting_a_version_with_properties(base: Path, run_cli: Run) -> None:
    ok(run_cli(["update-version", "sentiment", "green", "--env", "prod", "--property", "experiment=42"]),
       PROD_SENTIMENT)
    commit(base, run_cli, "green gets a property")
    ok(run_cli(["delete-version", "sentiment", "green", "--env", "prod"]), PROD_SENTIMENT)
    render(run_cli)
    assert check(run_cli).exit_code == 0


def test_check_allows_a_new_endpoint_and_a_removed_one(base: Path, run_cli: Run) -> None:
    ok(run_cli(["new", "fraud", "--env", "prod", "--version-name", "gbm-v3", *BODY, "--property", "owner=risk"]),
       "environments/prod/endpoints/fraud.yaml")
    spec_path(base, "image-classifier", "prod").unlink()
    render(run_cli)
    result = check(run_cli)
    assert result.exit_code == 0, result.stderr


def test_check_allows_a_new_environment(base: Path, run_cli: Run) -> None:
    shutil.copytree(base / "environments" / "dev", base / "environments" / "staging")
    replace_in(base / "environments" / "staging" / "environment.yaml", "name: dev", "name: staging")
    render(run_cli)
    assert check(run_cli).exit_code == 0
    assert check(run_cli, "HEAD", "--env", "staging").exit_code == 0


def test_check_with_an_unknown_ref_is_a_usage_error(base: Path, run_cli: Run) -> None:
    result = check(run_cli, "no-such-branch")
    assert result.exit_code == 2
    assert result.stderr == (f"endpointgen: error: --base 'no-such-branch' is not a commit in the git repository "
                             f"at {base}\n")


def test_check_outside_a_git_repository_is_a_usage_error(repo: Path, run_cli: Run) -> None:
    render(run_cli)
    result = check(run_cli)
    assert result.exit_code == 2
    assert "is not a commit" in result.stderr


def test_check_with_base_still_fails_on_stale_output(base: Path, run_cli: Run) -> None:
    ok(run_cli(["update-version", "sentiment", "green", "--env", "prod", "--traffic-percentile", "20"]),
       PROD_SENTIMENT)
    result = check(run_cli)  # not rendered
    assert result.exit_code == 1
    assert "stale: rendered/prod/endpoints/sentiment/virtualservice-sentiment.yaml" in result.stderr.splitlines()
    assert problem_lines(result) == []


def test_check_reports_stale_output_and_history_together(base: Path, run_cli: Run) -> None:
    replace_in(spec_path(base, "sentiment", "prod"), "owner: reviews-ml@contoso.com", "owner: someone@contoso.com")
    result = check(run_cli)
    assert result.exit_code == 1
    assert any(line.startswith("stale: ") for line in result.stderr.splitlines())
    assert len(problem_lines(result)) == 1


# --- diff --base ----------------------------------------------------------------------------------

def canary_step(run_cli: Run) -> None:
    """green 10% -> 20% with a new image tag; blue may scale to 10 replicas."""
    ok(run_cli(["update-version", "sentiment", "green", "--env", "prod", "--traffic-percentile", "20",
                "--image", f"{PROD_IMAGE}:1.4.3"]), PROD_SENTIMENT)
    ok(run_cli(["update-version", "sentiment", "blue", "--env", "prod", "--autoscale-max-replicas", "10"]),
       PROD_SENTIMENT)


def diff(run_cli: Run, *more: str) -> str:
    result = run_cli(["diff", "--base", "HEAD", *more])
    assert result.exit_code == 0, result.stderr
    return result.stdout


def test_diff_describes_the_change_then_shows_the_manifest_diff(base: Path, run_cli: Run) -> None:
    canary_step(run_cli)
    text = diff(run_cli)
    lines = text.splitlines()
    assert lines[0] == ("sentiment (prod): blue traffic 90% -> 80%, green traffic 10% -> 20%; blue max replicas "
                        "8 -> 10; green image tag 1.4.2 -> 1.4.3; rolls the pods of green")
    assert lines[1] == ""
    assert lines[2] == "--- a/rendered/prod/endpoints/sentiment/deployment-sentiment-blue.yaml"
    assert sorted(line[len("+++ b/"):] for line in lines if line.startswith("+++ ")) == [
        "rendered/prod/endpoints/sentiment/deployment-sentiment-blue.yaml",
        "rendered/prod/endpoints/sentiment/deployment-sentiment-green.yaml",
        "rendered/prod/endpoints/sentiment/scaledobject-sentiment-blue.yaml",
        "rendered/prod/endpoints/sentiment/virtualservice-sentiment.yaml",
    ]
    changes = [line for line in lines if line[:1] in "+-" and not line.startswith(("+++", "---"))]
    assert f'-          image: "{PROD_IMAGE}:1.4.2"' in changes and f'+          image: "{PROD_IMAGE}:1.4.3"' in changes
    assert "-  maxReplicaCount: 8" in changes and "+  maxReplicaCount: 10" in changes
    assert ["-          weight: 90", "+          weight: 80", "-          weight: 10", "+          weight: 20"] == [
        line for line in changes if "weight:" in line]


def test_diff_is_the_same_whether_rendered_or_not(base: Path, run_cli: Run) -> None:
    canary_step(run_cli)
    before_render = diff(run_cli)
    render(run_cli)
    assert diff(run_cli) == before_render


def test_diff_as_markdown(base: Path, run_cli: Run) -> None:
    canary_step(run_cli)
    text = diff(run_cli, "--format", "markdown")
    assert text.startswith("## endpointgen: what this change does\n\n### sentiment (prod)\n\n"
                           "- blue traffic 90% -> 80%, green traffic 10% -> 20%\n- blue max replicas 8 -> 10\n"
                           "- green image tag 1.4.2 -> 1.4.3\n- rolls the pods of green\n\n")
    pies = re.findall(r"```mermaid\n(.*?)```\n", text, re.S)
    assert pies == [
        'pie title sentiment (prod) before\n    "blue" : 90\n    "green" : 10\n',
        'pie title sentiment (prod) after\n    "blue" : 80\n    "green" : 20\n',
    ]
    details = re.search(r"<details><summary>Manifest diff \(4 file\(s\)\)</summary>\n\n```diff\n(.*?)\n```\n\n"
                        r"</details>\n\Z", text, re.S)
    assert details is not None
    assert details.group(1) + "\n" == diff(run_cli).split("\n\n", 1)[1]


def test_diff_of_a_new_and_a_removed_endpoint(base: Path, run_cli: Run) -> None:
    ok(run_cli(["new", "fraud", "--env", "prod", "--version-name", "gbm-v3", *BODY]),
       "environments/prod/endpoints/fraud.yaml")
    ok(run_cli(["create-version", "fraud", "gbm-v4", "--env", "prod", *BODY, "--traffic-percentile", "25"]),
       "environments/prod/endpoints/fraud.yaml")
    spec_path(base, "image-classifier", "prod").unlink()
    text = diff(run_cli)
    fraud, removed = text.splitlines()[:2]
    assert fraud.startswith("fraud (prod): new endpoint (gbm-v3 75%, gbm-v4 25%); namespace ml-endpoints, ")
    assert removed == "image-classifier (prod): endpoint removed"  # what a new endpoint says: test_pr_describe.py
    assert "+++ b/rendered/prod/endpoints/fraud/virtualservice-fraud.yaml" in text.splitlines()
    assert "--- a/rendered/prod/endpoints/image-classifier/virtualservice-image-classifier.yaml" in text.splitlines()
    assert "+++ /dev/null" in text.splitlines() and "--- /dev/null" in text.splitlines()
    # each endpoint has a Flux Kustomization of its own, and rendered/prod/kustomization.yaml lists its folder
    assert "+++ b/clusters/prod/endpoints/fraud.yaml" in text.splitlines()
    assert "--- a/clusters/prod/endpoints/image-classifier.yaml" in text.splitlines()
    assert "+++ b/rendered/prod/kustomization.yaml" in text.splitlines()
    assert {"+  - endpoints/fraud", "-  - endpoints/image-classifier"} <= set(text.splitlines())
    assert "clusters/prod/platform.yaml" not in text

    markdown = diff(run_cli, "--format", "markdown")
    assert "### fraud (prod)\n\n- new endpoint (gbm-v3 75%, gbm-v4 25%)\n- namespace ml-endpoints, " in markdown
    assert "### image-classifier (prod)\n\n- endpoint removed\n\n" in markdown
    assert re.findall(r"```mermaid\n(.*?)```\n", markdown, re.S) == [
        'pie title fraud (prod) after\n    "gbm-v3" : 75\n    "gbm-v4" : 25\n',
        'pie title image-classifier (prod) before\n    "resnet-v3" : 100\n',
    ]


def test_diff_of_added_and_deleted_versions(base: Path, run_cli: Run) -> None:
    ok(run_cli(["create-version", "sentiment", "amber", "--env", "prod", *BODY, "--traffic-percentile", "5"]),
       PROD_SENTIMENT)
    ok(run_cli(["delete-version", "sentiment", "blue", "--env", "dev", "--new-default", "green"]),
       "environments/dev/endpoints/sentiment.yaml")
    assert diff(run_cli).splitlines()[:2] == [
        "sentiment (dev): green traffic 50% -> 100%, blue traffic 50% -> 0%; version blue deleted; "
        "default version blue -> green",
        "sentiment (prod): blue traffic 90% -> 85%, amber traffic 0% -> 5%; version amber added: 5% of traffic, "
        "image acr.azurecr.io/scoring/fraud:1.0, model fraud-gbm:3, 0.5 CPU and 1 GB memory, autoscaling 1 to 6 "
        "replicas at 70% utilization, key auth (keys sentiment-primary-key and sentiment-secondary-key in Key Vault "
        "kv-ml-prod)",
    ]
    assert diff(run_cli, "--env", "prod").splitlines()[0].startswith("sentiment (prod): ")


def test_diff_names_settings_without_a_sentence_of_their_own(base: Path, run_cli: Run) -> None:
    ok(run_cli(["update-version", "sentiment", "green", "--env", "prod", "--env-var", "LOG_LEVEL=debug",
                "--autoscale-refresh-seconds", "5"]), PROD_SENTIMENT)
    ok(run_cli(["update", "sentiment", "--env", "prod", "--tag", "owner=ml", "--property", "tier=gold"]),
       PROD_SENTIMENT)
    assert diff(run_cli).splitlines()[0] == (
        "sentiment (prod): green autoscale_refresh_seconds, inference_config.environment_variables changed; "
        "properties added: tier; tags changed; rolls the pods of green")


def test_diff_names_properties_that_were_removed_or_changed(base: Path, run_cli: Run) -> None:
    replace_in(spec_path(base, "sentiment", "prod"), "owner: reviews-ml@contoso.com", "owner: someone@contoso.com")
    assert diff(run_cli).splitlines()[0] == "sentiment (prod): properties removed or changed: owner"


def test_diff_without_changes_says_so(base: Path, run_cli: Run) -> None:
    assert diff(run_cli) == "no endpoint changes\n"
    assert diff(run_cli, "--format", "markdown") == "## endpointgen: what this change does\n\nNo endpoint changes.\n"


def test_a_code_fence_in_the_content_cannot_end_the_diff_block(base: Path, run_cli: Run) -> None:
    ok(run_cli(["update", "sentiment", "--env", "prod", "--description", "```\n</details>\n# injected"]),
       PROD_SENTIMENT)
    markdown = diff(run_cli, "--format", "markdown")
    assert "- description changed\n" in markdown
    opening = re.search(r"^(`{3,})diff$", markdown, re.M)
    assert opening is not None
    fence = opening.group(1)
    body = markdown[opening.end():]
    closing = re.search(rf"^ {{0,3}}`{{{len(fence)},}}[ \t]*$", body, re.M)  # what CommonMark closes the block with
    assert closing is not None
    assert body[closing.end():] == "\n\n</details>\n"
    assert "```" in body[:closing.start()]  # the description's fence is inside the block


def test_diff_with_an_unknown_ref_is_a_usage_error(base: Path, run_cli: Run) -> None:
    result = run_cli(["diff", "--base", "no-such-branch"])
    assert result.exit_code == 2
    assert "is not a commit" in result.stderr


def test_diff_refuses_invalid_specs(base: Path, run_cli: Run) -> None:
    replace_in(spec_path(base, "sentiment", "prod"), "traffic_percentile: 10", "traffic_percentile: 300")
    result = run_cli(["diff", "--base", "HEAD"])
    assert result.exit_code == 1
    assert result.stderr.startswith(f"{PROD_SENTIMENT}:")


def test_diff_of_an_environment_only_change_says_manifests_change(base: Path, run_cli: Run) -> None:
    env_file = base / "environments/prod/environment.yaml"
    env_file.write_text(env_file.read_text().replace("revision: asm-1-25", "revision: asm-1-26"))
    text = diff(run_cli)
    # no spec changed, yet each endpoint's Deployments carry the revision in their pods: they roll
    template = " with no change to its spec (from the environment's settings or endpointgen's templates); "
    assert text.splitlines()[:2] == [
        f"image-classifier (prod): deployment-image-classifier-resnet-v3.yaml changes{template}rolls the pods of "
        "resnet-v3",
        f"sentiment (prod): deployment-sentiment-blue.yaml, deployment-sentiment-green.yaml change{template}rolls "
        "the pods of blue, green"]
    # the platform's words: test_pr_describe.py
    assert text.splitlines()[2].startswith("platform (prod): environment.yaml: istio.revision asm-1-25 -> asm-1-26; ")
    assert "+    istio.io/rev: asm-1-26" in text
