"""The YAML loader: positions of every value, and one clear positioned problem for every kind of bad input."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import VERSION_BODY, only_problem, problems, write_spec

from generator.problems import Problem
from generator.spec.loader import LoadError, MAX_DEPTH, MAX_FILE_BYTES, MAX_NODES, format_field, load_yaml


def load(tmp_path: Path, content: str | bytes):
    path = tmp_path / "spec.yaml"
    path.write_bytes(content.encode("utf-8") if isinstance(content, str) else content)
    return load_yaml(path, "spec.yaml")


def load_error(tmp_path: Path, content: str | bytes) -> Problem:
    """The one problem of a file that does not load; it must print as a single line."""
    with pytest.raises(LoadError) as info:
        load(tmp_path, content)
    problem = info.value.problem
    assert problem.path == "spec.yaml"
    assert problem.line >= 1 and problem.col >= 1
    assert "\n" not in str(problem) and "Traceback" not in str(problem)
    assert len(str(problem)) < 300
    return problem


# --- what loads --------------------------------------------------------------------------------

def test_positions_are_one_based_for_values_and_keys(tmp_path: Path) -> None:
    doc = load(tmp_path, "# comment\nname: demo\nversions:\n  - version_name: blue\n    cpu_cores: 0.5\n")
    assert doc.data == {"name": "demo", "versions": [{"version_name": "blue", "cpu_cores": 0.5}]}
    assert doc.positions[()] == (2, 1)
    assert doc.positions[("name",)] == (2, 7)
    assert doc.key_positions[("name",)] == (2, 1)
    assert doc.positions[("versions",)] == (4, 3)
    assert doc.positions[("versions", 0)] == (4, 5)
    assert doc.positions[("versions", 0, "cpu_cores")] == (5, 16)
    assert doc.key_positions[("versions", 0, "cpu_cores")] == (5, 5)


def test_where_falls_back_to_the_nearest_parent(tmp_path: Path) -> None:
    doc = load(tmp_path, "name: demo\nversions:\n  - version_name: blue\n")
    assert doc.where(("versions", 0, "num_replicas")) == (3, 5)
    assert doc.where(("versions", 0, "num_replicas"), key=True) == (3, 5)
    assert doc.where(("nothing", "here")) == (1, 1)


def test_problem_names_the_field(tmp_path: Path) -> None:
    doc = load(tmp_path, "versions:\n  - cpu_cores: 7\n")
    problem = doc.problem(("versions", 0, "cpu_cores"), "too many")
    assert str(problem) == "spec.yaml:2:16: versions[0].cpu_cores: too many"


def test_format_field() -> None:
    assert format_field(()) == ""
    assert format_field(("versions", 1, "models", 0, "uri")) == "versions[1].models[0].uri"


def test_utf8_bom_and_crlf_line_ends_are_accepted(tmp_path: Path) -> None:
    doc = load(tmp_path, b"\xef\xbb\xbfname: demo\r\nnamespace: ns\r\n")
    assert doc.data == {"name": "demo", "namespace": "ns"}
    assert doc.positions[("namespace",)] == (2, 12)


def test_non_ascii_text_keeps_columns_in_characters(tmp_path: Path) -> None:
    doc = load(tmp_path, "description: café\nname: démo\n")
    assert doc.data["description"] == "café"
    assert doc.positions[("name",)] == (2, 7)


def test_yaml_11_scalars_are_plain_values(tmp_path: Path) -> None:
    doc = load(tmp_path, "a: yes\nb: 0x1F\nc: 1_000\nd: ~\ne: '007'\n")
    assert doc.data == {"a": True, "b": 31, "c": 1000, "d": None, "e": "007"}


def test_explicit_standard_tags_are_allowed(tmp_path: Path) -> None:
    doc = load(tmp_path, "a: !!str 1.33\nb: !!int '3'\n")
    assert doc.data == {"a": "1.33", "b": 3}


def test_shared_anchors_within_limits_are_expanded(tmp_path: Path) -> None:
    doc = load(tmp_path, "base: &b {x: 1}\ncopy: *b\n")
    assert doc.data == {"base": {"x": 1}, "copy": {"x": 1}}


# --- what does not load: one clear problem each -----------------------------------------------------

def test_malformed_yaml(tmp_path: Path) -> None:
    p = load_error(tmp_path, "name: demo\nversions: [a, b\n")
    assert (p.line, p.col) == (3, 1)
    assert p.message == "invalid YAML: did not find expected ',' or ']'"


def test_bad_indentation(tmp_path: Path) -> None:
    p = load_error(tmp_path, "name: demo\n  namespace: x\n")
    assert (p.line, p.col) == (2, 12)
    assert p.message == "invalid YAML: mapping values are not allowed in this context"


def test_tab_indentation(tmp_path: Path) -> None:
    p = load_error(tmp_path, "name: demo\nversions:\n\t- a\n")
    assert (p.line, p.col) == (3, 1)
    assert p.message.startswith("invalid YAML: found character that cannot start any token")


def test_unclosed_quote(tmp_path: Path) -> None:
    p = load_error(tmp_path, 'name: "demo\n')
    assert (p.line, p.col) == (2, 1)
    assert p.message == "invalid YAML: found unexpected end of stream"


def test_duplicate_key_names_the_first_line(tmp_path: Path) -> None:
    p = load_error(tmp_path, "name: demo\nversions: []\n# again\nname: other\n")
    assert (p.line, p.col) == (4, 1)
    assert p.message == "duplicate key 'name' (first defined on line 1)"


def test_duplicate_nested_key(tmp_path: Path) -> None:
    p = load_error(tmp_path, "versions:\n  - version_name: a\n    cpu_cores: 1\n    cpu_cores: 2\n")
    assert (p.line, p.col) == (4, 5)
    assert p.message == "duplicate key 'cpu_cores' (first defined on line 3)"


@pytest.mark.parametrize("content", ["", "\n\n", "   \n  \n"], ids=["empty", "newlines", "whitespace"])
def test_empty_file(tmp_path: Path, content: str) -> None:
    p = load_error(tmp_path, content)
    assert (p.line, p.col, p.field) == (1, 1, "")
    assert p.message == "file is empty; expected a YAML mapping"


def test_comments_only_file(tmp_path: Path) -> None:
    p = load_error(tmp_path, "# nothing yet\n   # still nothing\n")
    assert (p.line, p.col) == (1, 1)
    assert p.message == "file is empty; expected a YAML mapping"


def test_binary_file(tmp_path: Path) -> None:
    p = load_error(tmp_path, b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR")
    assert (p.line, p.col) == (1, 1)
    assert p.message == "file is binary (contains NUL bytes); expected a YAML text file"


def test_invalid_utf8(tmp_path: Path) -> None:
    p = load_error(tmp_path, b"name: caf\xe9\n")
    assert (p.line, p.col) == (1, 1)
    assert p.message == "file is not valid UTF-8 (byte 9); expected a YAML text file"


def test_control_character(tmp_path: Path) -> None:
    p = load_error(tmp_path, "name: démo\ndescription: a\x07b\n")
    assert (p.line, p.col) == (2, 15)
    assert p.message == "invalid YAML: control characters are not allowed (character 0x0007)"


def test_billion_laughs_fails_fast(tmp_path: Path) -> None:
    lines = ["a: &a [lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
    for prev, cur in zip("abcdefgh", "bcdefghi"):
        lines.append(f"{cur}: &{cur} [" + ", ".join([f"*{prev}"] * 9) + "]")
    p = load_error(tmp_path, "\n".join(lines) + "\n")
    assert p.message == f"document expands to more than {MAX_NODES} values (alias bomb?)"
    assert p.line <= 9


def test_recursive_alias(tmp_path: Path) -> None:
    p = load_error(tmp_path, "name: demo\nversions: &loop\n  - *loop\n")
    assert p.message == f"document is nested more than {MAX_DEPTH} levels deep"
    assert (p.line, p.col) == (2, 11)  # an alias is its anchored node: the position is the anchor's


def test_deep_nesting_within_libyaml_limits(tmp_path: Path) -> None:
    p = load_error(tmp_path, "a: " + "[" * 200 + "]" * 200 + "\n")
    assert (p.line, p.col) == (1, 4 + MAX_DEPTH)
    assert p.message == f"document is nested more than {MAX_DEPTH} levels deep"


def test_deep_block_nesting(tmp_path: Path) -> None:
    text = "".join("  " * i + f"k{i}:\n" for i in range(100))
    p = load_error(tmp_path, text)
    assert p.line == MAX_DEPTH + 2
    assert p.message == f"document is nested more than {MAX_DEPTH} levels deep"


def test_very_deep_nesting_stops_in_the_parser(tmp_path: Path) -> None:
    p = load_error(tmp_path, "[" * 50_000 + "]" * 50_000)
    assert p.line == 1
    assert p.message.startswith("invalid YAML:") and "nesting depth" in p.message


def test_nesting_limit_boundary(tmp_path: Path) -> None:
    """The top value is at depth 0, so MAX_DEPTH + 1 nested lists load and one more does not."""
    doc = load(tmp_path, "[" * (MAX_DEPTH + 1) + "]" * (MAX_DEPTH + 1))
    depth, value = 0, doc.data
    while value:
        value, depth = value[0], depth + 1
    assert depth == MAX_DEPTH
    p = load_error(tmp_path, "[" * (MAX_DEPTH + 2) + "]" * (MAX_DEPTH + 2))
    assert (p.line, p.col) == (1, MAX_DEPTH + 2)


def test_huge_file(tmp_path: Path) -> None:
    p = load_error(tmp_path, "description: " + "x" * MAX_FILE_BYTES + "\n")
    assert (p.line, p.col) == (1, 1)
    assert p.message == f"file is {MAX_FILE_BYTES + 14} bytes; specs are limited to {MAX_FILE_BYTES} bytes"


@pytest.mark.parametrize(
    ("content", "col", "tag"),
    [
        ("a: !!python/object:os.system ls\n", 4, "tag:yaml.org,2002:python/object:os.system"),
        ("!!python/object/apply:os.system [ls]\n", 1, "tag:yaml.org,2002:python/object/apply:os.system"),
        ("a: !!binary aGVsbG8=\n", 4, "tag:yaml.org,2002:binary"),
        ("a: !!set {x}\n", 4, "tag:yaml.org,2002:set"),
        ("a: !Ref other\n", 4, "!Ref"),
    ],
    ids=["python-object", "python-apply", "binary", "set", "custom"],
)
def test_custom_and_unsafe_tags(tmp_path: Path, content: str, col: int, tag: str) -> None:
    p = load_error(tmp_path, content)
    assert (p.line, p.col) == (1, col)
    assert p.message == f"unsupported YAML tag {tag!r}; use plain YAML values"


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("a: !!bool maybe\n", "invalid bool value 'maybe'"),
        ("a: !!int ''\n", "invalid int value ''"),
        ("a: !!float ''\n", "invalid float value ''"),
        ("a: !!float abc\n", "invalid float value 'abc': could not convert string to float: 'abc'"),
        ("a: !!timestamp yesterday\n", "invalid timestamp value 'yesterday'"),
        ("a: !!map scalar\n", "invalid map value 'scalar': expected a mapping node, but found scalar"),
        ("a: 2024-13-45\n", "invalid timestamp value '2024-13-45': month must be in 1..12"),
    ],
    ids=["bool", "empty-int", "empty-float", "float", "timestamp", "map", "date"],
)
def test_standard_tags_with_bad_values(tmp_path: Path, content: str, message: str) -> None:
    p = load_error(tmp_path, content)
    assert (p.line, p.col) == (1, 4)
    assert p.message == message


def test_huge_integer_is_quoted_briefly(tmp_path: Path) -> None:
    p = load_error(tmp_path, "a: " + "9" * 5000 + "\n")
    assert (p.line, p.col) == (1, 4)
    assert p.message.startswith("invalid int value '" + "9" * 60 + "'...")


def test_nan_is_refused(tmp_path: Path) -> None:
    p = load_error(tmp_path, "versions:\n  - traffic_percentile: .NaN\n")
    assert (p.line, p.col) == (2, 25)
    assert p.message == "'.NaN' is NaN (not a number); write a number"


@pytest.mark.parametrize(
    ("content", "col", "shown"),
    [("1: a\n", 1, "'1'"), ("true: a\n", 1, "'true'"), ("~: a\n", 1, "'~'"), ("x: {2.5: a}\n", 5, "'2.5'"),
     ("? [a, b]\n: c\n", 3, "'a collection'")],
    ids=["int", "bool", "null", "float", "sequence"],
)
def test_non_string_keys(tmp_path: Path, content: str, col: int, shown: str) -> None:
    p = load_error(tmp_path, content)
    assert (p.line, p.col) == (1, col)
    assert p.message == f"mapping key {shown} is not a string; quote it"


def test_merge_keys(tmp_path: Path) -> None:
    p = load_error(tmp_path, "base: &b {cpu_cores: 1}\nversions:\n  - <<: *b\n    version_name: a\n")
    assert (p.line, p.col) == (3, 5)
    assert p.message == "merge keys (<<) are not supported; write the fields out"


def test_several_documents(tmp_path: Path) -> None:
    p = load_error(tmp_path, "name: a\n---\nname: b\n")
    assert (p.line, p.col) == (2, 1)
    assert p.message == "invalid YAML: expected a single document in the stream, but found another document"


def test_undefined_alias(tmp_path: Path) -> None:
    p = load_error(tmp_path, "name: *nowhere\n")
    assert (p.line, p.col) == (1, 7)
    assert p.message.startswith("invalid YAML: found undefined alias")


def test_unreadable_path(tmp_path: Path) -> None:
    with pytest.raises(LoadError) as info:
        load_yaml(tmp_path / "missing.yaml", "missing.yaml")
    assert str(info.value.problem).startswith("missing.yaml:1:1: cannot read file:")


# --- the same, through a repository: one positioned problem per bad file ---------------------------

def test_top_level_list_instead_of_mapping(repo: Path) -> None:
    write_spec(repo, "demo", "- name: demo\n- versions: []\n")
    p = only_problem(repo)
    assert (p.path, p.line, p.col, p.field) == ("environments/dev/endpoints/demo.yaml", 1, 1, "")
    assert p.message == "expected a YAML mapping at the top level, got list"


def test_top_level_scalar_instead_of_mapping(repo: Path) -> None:
    write_spec(repo, "demo", "# a comment\njust a sentence\n")
    p = only_problem(repo)
    assert (p.line, p.col) == (2, 1)
    assert p.message == "expected a YAML mapping at the top level, got str"


@pytest.mark.parametrize(
    "content",
    [b"", b"# only a comment\n", b"\x00\x01\x02", b"name: \xff\xfe\n", b"a: [\n", b"a: 1\na: 2\n",
     b"a: !!python/object:x y\n", b"1: a\n", b"<<: {a: 1}\n"],
    ids=["empty", "comment", "binary", "utf8", "malformed", "duplicate", "tag", "key", "merge"],
)
def test_bad_files_give_one_problem_in_a_repository(repo: Path, content: bytes) -> None:
    path = repo / "environments/dev/endpoints/demo.yaml"
    path.write_bytes(content)
    p = only_problem(repo)
    assert p.path == "environments/dev/endpoints/demo.yaml"
    assert "\n" not in str(p)


def test_the_same_repository_with_a_good_spec_has_no_problems(repo: Path) -> None:
    """Control for the test above: the problems come from the bad content, not from the setup."""
    write_spec(repo, "demo", "name: demo\nversions:\n  - version_name: blue\n" + VERSION_BODY)
    assert problems(repo) == []
