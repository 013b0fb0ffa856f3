"""`endpointgen serve`: a version's scoring script under the real inference server, end to end."""

from __future__ import annotations

import ipaddress
import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from click.testing import CliRunner

from generator.cli import cli
from generator.serve import server
from generator.problems import UsageError
from generator.serve.pod import lay_out, local_collection, local_telemetry, version_deployment
from render_helpers import PROJECT, free_port

SCRIPT = '''\
import json, os

def init():
    global MODEL
    MODEL = sorted(os.listdir(os.environ["AZUREML_MODEL_DIR"]))

def run(raw):
    return {"echo": json.loads(raw), "model_files": MODEL}
'''


def serve(*args: str) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen([sys.executable, "-m", "generator", "--root", str(PROJECT), "serve", *args],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)


def read_until(process: subprocess.Popen[str], marker: str, timeout: float = 90) -> str:
    """The output up to the line containing `marker` (or up to the end, when the process stops first)."""
    seen = []
    deadline = time.monotonic() + timeout
    assert process.stdout is not None
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if not line:
            break
        seen.append(line)
        if marker in line:
            break
    return "".join(seen)


def sources(tmp_path: Path, script: str = SCRIPT) -> tuple[Path, Path]:
    source = tmp_path / "src"
    source.mkdir()
    (source / "score.py").write_text(script)
    model = tmp_path / "model"
    model.mkdir()
    (model / "weights.bin").write_text("w")
    return source, model


def test_serve_answers_curl_with_the_scripts_result_and_stops_on_ctrl_c(tmp_path: Path) -> None:
    source, model = sources(tmp_path)
    port = free_port()
    process = serve("sentiment", "blue", "--env", "prod", "--source", str(source),
                    "--model", f"sentiment-distilbert:7={model}", "--port", str(port))
    try:
        output = read_until(process, "stops it")
        assert f"serves at http://127.0.0.1:{port}/score" in output, output
        assert f"curl -X POST http://127.0.0.1:{port}/score" in output
        request = urllib.request.Request(f"http://127.0.0.1:{port}/score", data=b'{"data": [1]}',
                                         headers={"Content-Type": "application/json"}, method="POST")
        with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310 - loopback
            assert json.loads(response.read()) == {"echo": {"data": [1]}, "model_files": ["weights.bin"]}
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=30) == 0
        assert "endpointgen: stopped" in (process.stdout.read() if process.stdout else "")
    finally:
        if process.poll() is None:
            process.kill()


def test_a_script_that_fails_to_load_exits_1_with_a_clear_message_at_once(tmp_path: Path) -> None:
    source, model = sources(tmp_path, "def init():\n    raise RuntimeError('no model here')\n\ndef run(raw):\n    pass\n")
    # prod enables App Insights: locally it is off, so the server does not wait 30 s to upload its logs
    started = time.monotonic()
    process = serve("sentiment", "blue", "--env", "prod", "--source", str(source),
                    "--model", f"sentiment-distilbert:7={model}", "--port", str(free_port()))
    try:
        output = read_until(process, "endpointgen: error")
        assert process.wait(timeout=60) == 1
        assert time.monotonic() - started < 15, output  # 31 s with App Insights uploading to a closed port
        assert "no model here" in output  # the server's log streams through
        # gunicorn halts with 3 (a worker's boot error); with two workers failing at once it may reap the
        # second while halting and exit 1
        assert re.search(r"endpointgen: error: the inference server stopped \(exit code [13]\) before it was "
                         r"ready: the scoring script failed to load or init\(\) failed", output), output[-2000:]
    finally:
        if process.poll() is None:
            process.kill()


def listening(port: int) -> list[str]:
    """The local addresses of the sockets listening on `port`, read from the kernel's socket tables."""
    found = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            local, state = line.split()[1], line.split()[3]
            address, hex_port = local.split(":")
            if state == "0A" and int(hex_port, 16) == port:  # TCP_LISTEN
                raw = bytes.fromhex(address)
                words = b"".join(raw[i:i + 4][::-1] for i in range(0, len(raw), 4))
                found.append(str(ipaddress.ip_address(words)))
    return found


def descendants(pid: int) -> set[int]:
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    found, todo = set(), [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.add(child)
            todo.append(child)
    return found


def alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


@pytest.mark.parametrize("stop_signal", [signal.SIGTERM, signal.SIGHUP])
def test_serve_listens_on_loopback_only_and_a_signal_leaves_nothing_behind(tmp_path: Path, stop_signal: int) -> None:
    source, model = sources(tmp_path)
    port = free_port()
    process = serve("sentiment", "blue", "--env", "prod", "--source", str(source),
                    "--model", f"sentiment-distilbert:7={model}", "--port", str(port))
    try:
        assert "stops it" in read_until(process, "stops it")
        assert listening(port) and set(listening(port)) == {"127.0.0.1"}  # azmlinfsrv alone binds 0.0.0.0
        server = descendants(process.pid)
        assert len(server) >= 2  # gunicorn's master and a worker
        folders = {Path(os.readlink(f"/proc/{pid}/cwd")) for pid in server}
        [folder] = {f for f in (next((p for p in d.parents if p.name.startswith("endpointgen-serve-")), None)
                                for d in folders) if f}
        process.send_signal(stop_signal)  # `kill PID`, or the terminal closing
        assert process.wait(timeout=30) == 0
        assert "endpointgen: stopped" in (process.stdout.read() if process.stdout else "")
        assert [pid for pid in server if alive(pid)] == []
        assert not folder.exists()
        assert listening(port) == []
    finally:
        if process.poll() is None:
            process.kill()


def test_host_must_be_an_address_and_other_hosts_are_warned_about(tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    source, model = sources(tmp_path)
    args = ["--root", str(PROJECT), "serve", "sentiment", "blue", "--env", "prod", "--source", str(source),
            "--model", f"sentiment-distilbert:7={model}"]
    result = CliRunner().invoke(cli, [*args, "--host", "localhost"])
    assert result.exit_code == 2 and "--host 'localhost': not an IP address" in result.stderr
    monkeypatch.setattr(server, "server_installed", lambda: False)  # stop before starting anything
    result = CliRunner().invoke(cli, [*args, "--host", "0.0.0.0"])
    assert "warning: --host 0.0.0.0 is not a loopback address" in result.stderr
    assert "warning" not in CliRunner().invoke(cli, [*args, "--host", "::1"]).stderr


def test_app_insights_needs_a_real_key(tmp_path: Path) -> None:
    deployment, source_directory = version_deployment(PROJECT, "prod", "sentiment", "blue")
    source, model = sources(tmp_path)
    pod = lay_out(deployment, source_directory, tmp_path / "pod", source, {"sentiment-distilbert/7": model}, {})
    assert pod.env["AML_APP_INSIGHTS_ENABLED"] == "true"  # what the cluster's pod gets
    local = local_telemetry(pod, False, {})
    assert local.env["AML_APP_INSIGHTS_ENABLED"] == "false" and "AML_APP_INSIGHTS_KEY" not in local.env
    with pytest.raises(UsageError, match="--secret AML_APP_INSIGHTS_KEY=KEY"):
        local_telemetry(pod, True, {})
    key = "22222222-2222-4222-8222-222222222222"
    assert local_telemetry(pod, True, {"AML_APP_INSIGHTS_KEY": key}).env["AML_APP_INSIGHTS_KEY"] == key


def test_every_model_needs_a_folder(tmp_path: Path) -> None:
    source, _ = sources(tmp_path)
    result = CliRunner().invoke(cli, ["--root", str(PROJECT), "serve", "sentiment", "blue", "--env", "prod",
                                      "--source", str(source)])
    assert result.exit_code == 2
    assert "--model sentiment-distilbert:7=DIR" in result.stderr


def test_unknown_version_is_a_usage_error(tmp_path: Path) -> None:
    source, _ = sources(tmp_path)
    result = CliRunner().invoke(cli, ["--root", str(PROJECT), "serve", "sentiment", "purple", "--env", "prod",
                                      "--source", str(source)])
    assert result.exit_code == 2
    assert "endpoint 'sentiment' has no version 'purple' (versions: blue, green)" in result.stderr


def test_without_the_server_a_one_line_install_hint(tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    source, model = sources(tmp_path)
    monkeypatch.setattr(server, "server_installed", lambda: False)
    result = CliRunner().invoke(cli, ["--root", str(PROJECT), "serve", "sentiment", "blue", "--env", "prod",
                                      "--source", str(source), "--model", f"sentiment-distilbert:7={model}"])
    assert result.exit_code == 1
    assert result.stderr == ("endpointgen: error: the Azure ML inference server is not installed; install it with "
                             "`pip install -e '.[serve]'`\n")


def test_secret_values_come_from_the_command_line_and_are_never_written(tmp_path: Path) -> None:
    deployment, source_directory = version_deployment(PROJECT, "prod", "sentiment", "blue")
    source, model = sources(tmp_path)
    pod = lay_out(deployment, source_directory, tmp_path / "pod", source,
                               {"sentiment-distilbert/7": model},
                               {"AML_APP_INSIGHTS_KEY": "22222222-2222-4222-8222-222222222222"})
    assert pod.env["AML_APP_INSIGHTS_KEY"] == "22222222-2222-4222-8222-222222222222"
    assert pod.env["APPLICATIONINSIGHTS_CONNECTION_STRING"].endswith("IngestionEndpoint=http://127.0.0.1:9/")
    assert pod.env["AML_APP_ROOT"] == str(tmp_path / "pod" / "var/azureml-app")
    assert pod.env["AZUREML_ENTRY_SCRIPT"] == "src/score.py"
    assert (tmp_path / "pod/var/azureml-app/src/score.py").resolve() == (source / "score.py").resolve()
    assert (tmp_path / "pod/var/azureml-app/azureml-models/sentiment-distilbert/7").resolve() == model.resolve()


def test_a_collecting_version_collects_to_the_log_unless_given_a_storage(tmp_path: Path) -> None:
    deployment, source_directory = version_deployment(PROJECT, "prod", "sentiment", "green")
    source, model = sources(tmp_path)
    models = {"sentiment-distilbert/8": model}
    pod, said = local_collection(lay_out(deployment, source_directory, tmp_path / "local", source, models, {}), {})
    assert (pod.env["AML_MODEL_DC_STORAGE_ENABLED"], pod.env["AML_MODEL_DC_DEBUG"]) == ("false", "true")
    assert "AML_MODEL_DC_STORAGE" not in pod.env and said is not None and "debug mode" in said
    given = {"AML_MODEL_DC_STORAGE": "UseDevelopmentStorage=true;DevelopmentStorageProxyUri=http://127.0.0.1"}
    pod, said = local_collection(lay_out(deployment, source_directory, tmp_path / "azurite", source, models, given),
                                 given)
    assert pod.env["AML_MODEL_DC_STORAGE"] == given["AML_MODEL_DC_STORAGE"] and "AML_MODEL_DC_DEBUG" not in pod.env
    assert said == "model data collection uploads to the storage of --secret AML_MODEL_DC_STORAGE"
    blue, blue_source = version_deployment(PROJECT, "prod", "sentiment", "blue")  # collects nothing: unchanged
    pod = lay_out(blue, blue_source, tmp_path / "blue", source, {"sentiment-distilbert/7": model}, {})
    assert local_collection(pod, {}) == (pod, None)
