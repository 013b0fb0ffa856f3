"""Start one container of a pod, as a container runtime would; run inside the sandbox, as root.

    python3 launcher.py SPEC.json

SPEC: {"netns": "/run/netns/POD" or null, "state": folder for this container's root file system,
"image": {"PATH": "host path"} (files the image adds, linked in), "dirs": {"PATH": mode} (the image's
folders and their modes), "shared": [host folders its programs run from, bound read-only], "argv": [...],
"env": {...}, "mounts": [{"path", "source", "readOnly"}], "uid", "gid", "readOnlyRoot", "workingDir",
"sysctls": {"net.ipv4.x": "v"}}.

The root file system is an overlay of the machine's own (the lower layer, never written) and the image's
files; volumes are bind mounts at their paths, /tmp is empty, the root is read-only when the container asks;
then chroot, the user's ids, exec. Kept to the standard library: it runs before any virtualenv is entered.
"""

from __future__ import annotations

import ctypes
import json
import os
import shutil
import sys
from pathlib import Path

CLONE_NEWNS = 0x00020000
CLONE_NEWNET = 0x40000000
MS_RDONLY, MS_REMOUNT, MS_BIND, MS_REC, MS_PRIVATE = 1, 32, 4096, 16384, 1 << 18

libc = ctypes.CDLL(None, use_errno=True)


def check(result: int, what: str) -> None:
    if result != 0:
        error = ctypes.get_errno()
        raise OSError(error, f"{what}: {os.strerror(error)}")


def mount(source: str, target: str, fstype: str | None, flags: int, options: str | None = None) -> None:
    check(libc.mount(source.encode(), target.encode(), fstype.encode() if fstype else None, flags,
                     options.encode() if options else None), f"mount {source} on {target}")


def enter_netns(path: str) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        check(libc.setns(fd, CLONE_NEWNET), f"setns {path}")
    finally:
        os.close(fd)


def inside(root: Path, path: str, depth: int = 0) -> Path:
    """`path` resolved as the container will see it: symlinks (such as /var/run -> /run) followed within `root`."""
    current = root
    parts = [p for p in path.split("/") if p and p != "."]
    for index, part in enumerate(parts):
        candidate = current / part
        if candidate.is_symlink() and depth < 40:
            target = os.readlink(candidate)
            rest = "/".join(parts[index + 1:])
            base = "" if target.startswith("/") else str(current.relative_to(root))
            return inside(root, f"{base}/{target}/{rest}", depth + 1)
        current = root if part == ".." and current == root else (current.parent if part == ".." else candidate)
    return current


def root_file_system(spec: dict) -> Path:
    """Overlay the machine's root with the image's files and the volumes; the new root's path."""
    state = Path(spec["state"])
    upper, work, merged = state / "upper", state / "work", state / "root"
    for folder in (upper, work, merged):
        folder.mkdir(parents=True, exist_ok=True)
    for path, mode in spec.get("dirs", {}).items():
        folder = upper / path.lstrip("/")
        folder.mkdir(parents=True, exist_ok=True)
        folder.chmod(mode)
    for path, source in spec.get("image", {}).items():  # the image's own files: hard links, else copies
        copy = upper / path.lstrip("/")
        copy.parent.mkdir(parents=True, exist_ok=True)
        if not copy.exists():
            try:
                os.link(source, copy)
            except OSError:
                shutil.copy2(source, copy)
    mount("overlay", str(merged), "overlay", 0, f"lowerdir=/,upperdir={upper},workdir={work}")
    for special in ("proc", "dev", "sys"):
        mount(f"/{special}", str(merged / special), None, MS_BIND | MS_REC)
    mount("tmpfs", str(merged / "tmp"), "tmpfs", 0, "mode=1777")
    for volume in spec.get("mounts", []):
        target = inside(merged, volume["path"])
        source = Path(volume["source"])
        if source.is_dir():
            target.mkdir(parents=True, exist_ok=True)
        else:
            target.parent.mkdir(parents=True, exist_ok=True)
            target.touch(exist_ok=True)
        mount(str(source), str(target), None, MS_BIND | MS_REC)
        if volume.get("readOnly"):
            mount(str(source), str(target), None, MS_BIND | MS_REMOUNT | MS_RDONLY)
    # the machine's folders the image's programs run from, read-only, last: a checkout under /tmp stays
    # visible over the container's own /tmp (its mount point then shows in that volume as an empty folder)
    for path in spec.get("shared", []):
        target = inside(merged, path)
        target.mkdir(parents=True, exist_ok=True)
        mount(path, str(target), None, MS_BIND | MS_REC)
        mount(path, str(target), None, MS_BIND | MS_REMOUNT | MS_RDONLY)
    if spec.get("readOnlyRoot"):  # the overlay's own mount point only: the volumes on it stay as they are
        mount("none", str(merged), None, MS_BIND | MS_REMOUNT | MS_RDONLY)
    return merged


def main() -> None:
    spec = json.loads(Path(sys.argv[1]).read_text())
    if spec.get("netns"):
        enter_netns(spec["netns"])
    for key, value in spec.get("sysctls", {}).items():
        Path("/proc/sys", *key.split(".")).write_text(str(value))
    check(libc.unshare(CLONE_NEWNS), "unshare mount namespace")
    mount("none", "/", None, MS_REC | MS_PRIVATE)
    root = root_file_system(spec)
    os.chroot(root)
    os.chdir(spec.get("workingDir") or "/")
    uid, gid = spec.get("uid", 0), spec.get("gid", 0)
    os.setgroups([gid])
    os.setgid(gid)
    os.setuid(uid)
    argv = spec["argv"]
    os.execvpe(argv[0], argv, spec.get("env", {}))


if __name__ == "__main__":
    main()
