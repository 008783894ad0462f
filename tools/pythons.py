#!/usr/bin/env python3
"""The CPython versions mpgo supports: CI tests exactly these, and setup.py
installs on no other (python_requires, classifiers and its build check come
from SUPPORTED).

`python3 tools/pythons.py` prints the interpreter of each supported version,
one a line; `python3 tools/pythons.py 3.9 3.12` those of the versions given.
An interpreter is python3.X on PATH, else pyenv's newest 3.X.
"""
import os
import shutil
import subprocess
import sys

SUPPORTED = ((3, 10), (3, 11), (3, 12), (3, 13))


def requires():
    """python_requires for SUPPORTED."""
    lo, hi = SUPPORTED[0], SUPPORTED[-1]
    return ">=%d.%d,<%d.%d" % (lo[0], lo[1], hi[0], hi[1] + 1)


def _runs(path):
    # A pyenv shim exists for every installed version but runs only those
    # the pyenv configuration selects.
    return path and subprocess.run([path, "-c", ""], stderr=subprocess.DEVNULL).returncode == 0


def interpreter(version):
    """The path of the python<version> interpreter, or None."""
    name = "python" + version
    path = shutil.which(name)
    if _runs(path):
        return path
    if shutil.which("pyenv"):
        out = subprocess.run(["pyenv", "latest", version], capture_output=True, text=True)
        root = subprocess.run(["pyenv", "root"], capture_output=True, text=True).stdout.strip()
        path = os.path.join(root, "versions", out.stdout.strip(), "bin", name)
        if out.returncode == 0 and _runs(path):
            return path
    return None


def main(versions):
    versions = versions or ["%d.%d" % v for v in SUPPORTED]
    missing = []
    for v in versions:
        path = interpreter(v)
        if path:
            print(path)
        else:
            missing.append(v)
    if missing:
        sys.exit("tools/pythons.py: no interpreter for Python %s (install it, e.g. "
                 "`pyenv install %s`)" % (", ".join(missing), missing[0]))


if __name__ == "__main__":
    main(sys.argv[1:])
