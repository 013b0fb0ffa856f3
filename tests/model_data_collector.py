"""What azureml-monitoring's ModelDataCollector needs to run here, and the storage it writes to.

- Its native library (libmodeldatacollector.so and the Azure Storage C++ client under it) was built on Ubuntu
  16.04: it needs OpenSSL 1.0.x, libxml++ 2.6, glibmm 2.4 and sigc++ 2.0, which v1's images carried. The last
  three are Debian packages (.ci/run installs them); OpenSSL 1.0.2 comes from an old manylinux1 wheel on PyPI
  that bundles it (psycopg2-binary 2.7.7), its libraries linked under the names the collector asks for. Its
  symbols carry no version, and the collector asks for none, so they resolve; Python's own OpenSSL stays apart
  (the collector loads them with RTLD_LOCAL).
- Azurite (npm `azurite`), the Azure Storage emulator, on 127.0.0.1: the connection string's BlobEndpoint
  points the collector there.

Both are fetched once into ~/.cache/endpointgen (PyPI and npm only).
"""

from __future__ import annotations

import ctypes.util
import os
import shutil
import socket
import subprocess
import sys
import time
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

CACHE = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "endpointgen"
OPENSSL_WHEEL = "psycopg2-binary==2.7.7"  # manylinux1, cp36: bundles OpenSSL 1.0.2q
AZURITE = "azurite@3.35.0"
SYSTEM_LIBRARIES = ["libxml++-2.6.so.2", "libglibmm-2.4.so.1", "libsigc-2.0.so.0"]
# Azurite's well-known development account (documented by Microsoft; not a secret)
ACCOUNT = "devstoreaccount1"
ACCOUNT_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="


def native_libraries() -> Path:
    """A folder for LD_LIBRARY_PATH with what the collector's native library needs beyond the system's."""
    missing = [name for name in SYSTEM_LIBRARIES if not ctypes.util.find_library(name[3:].split(".so")[0])]
    if missing:
        raise RuntimeError(f"missing {', '.join(missing)}: apt-get install libxml++2.6-2v5 libglibmm-2.4-1v5 "
                           "libsigc++-2.0-0v5 (.ci/run does)")
    folder = CACHE / "model-data-collector" / "openssl-1.0.2"
    if (folder / "libssl.so.1.0.0").exists():
        return folder
    download = folder.parent / "download"
    download.mkdir(parents=True, exist_ok=True)
    subprocess.run([sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--only-binary", ":all:",
                    "--python-version", "3.6", "--implementation", "cp", "--abi", "cp36m",
                    "--platform", "manylinux1_x86_64", OPENSSL_WHEEL, "-d", str(download)], check=True)
    staging = folder.with_name(folder.name + ".partial")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir()
    [wheel] = download.glob("psycopg2_binary-2.7.7-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        for name in archive.namelist():
            if name.startswith("psycopg2/.libs/"):
                (staging / Path(name).name).write_bytes(archive.read(name))
    for soname, prefix in (("libssl.so.1.0.0", "libssl-"), ("libcrypto.so.1.0.0", "libcrypto-")):
        [found] = staging.glob(f"{prefix}*.so.1.0.2*")
        (staging / soname).symlink_to(found.name)
    # libffi.so.6 is an unused leftover in the collector's NEEDED list: the system's libffi stands in
    (staging / "libffi.so.6").symlink_to(system_library("libffi.so."))
    staging.rename(folder)
    return folder


def system_library(prefix: str) -> str:
    """The path of the first library in ld.so's cache whose name starts with `prefix`."""
    listing = subprocess.run(["ldconfig", "-p"], capture_output=True, text=True, check=True).stdout
    for line in listing.splitlines():
        name, _, path = line.strip().partition(" => ")
        if name.startswith(prefix) and "x86-64" in name + line:
            return path
    raise RuntimeError(f"no {prefix}* in ld.so's cache")


def azurite_command() -> Path:
    """azurite-blob, installed from npm into the cache."""
    folder = CACHE / AZURITE.replace("@", "-")
    command = folder / "node_modules" / ".bin" / "azurite-blob"
    if not command.exists():
        folder.mkdir(parents=True, exist_ok=True)
        subprocess.run(["npm", "install", "--no-audit", "--no-fund", "--silent", "--prefix", str(folder), AZURITE],
                       check=True, capture_output=True)
    return command


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def azurite(location: Path) -> Iterator[str]:
    """Azurite's blob service on 127.0.0.1, its telemetry off; yields the connection string of its account."""
    port = free_port()
    process = subprocess.Popen([str(azurite_command()), "--blobHost", "127.0.0.1", "--blobPort", str(port),
                                "--location", str(location), "--skipApiVersionCheck", "--loose",
                                "--disableTelemetry", "--silent"],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("Azurite did not start") from None
                time.sleep(0.2)
        yield (f"DefaultEndpointsProtocol=http;AccountName={ACCOUNT};AccountKey={ACCOUNT_KEY};"
               f"BlobEndpoint=http://127.0.0.1:{port}/{ACCOUNT};")
    finally:
        os.killpg(process.pid, 15)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, 9)
            process.wait()
