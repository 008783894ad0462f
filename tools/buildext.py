#!/usr/bin/env python3
"""Build mpgo's native extension: ONE shared object holding the Go runtime.

gopy generates the CPython wrappers for pybind/; this script compiles them
together with capi's //export functions and the hand-written fast paths in
pybind/cext/ in a single `go build -buildmode=c-shared`, because a process may
hold only one Go runtime. The result, plus gopy's Python wrappers (with the
os.chdir they do on import removed), goes to --out.

Used by setup.py (pip install .) and by `make build`.
"""
import argparse
import os
import re
import shutil
import subprocess
import sys
import sysconfig

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BUILD = os.path.join(ROOT, "_build")
BIN = os.path.join(BUILD, "bin")
GEN = os.path.join(BUILD, "ext")


def run(cmd, cwd=ROOT, env=None):
    print("+", " ".join(cmd), flush=True)
    subprocess.run(cmd, cwd=cwd, env=env, check=True)


def go_env(extra=None):
    env = dict(os.environ)
    env["PATH"] = BIN + os.pathsep + env.get("PATH", "")
    env.setdefault("GOFLAGS", "-mod=mod")
    env["CGO_ENABLED"] = "1"
    if extra:
        env.update(extra)
    return env


def tools(env):
    os.makedirs(BIN, exist_ok=True)
    run(["go", "build", "-o", BIN + os.sep,
         "github.com/go-python/gopy", "golang.org/x/tools/cmd/goimports"], env=env)


def unchdir(src):
    """Drop the os.chdir dance gopy's wrappers do on import: it fails when the
    working directory is gone, races with threads and costs ~10 ms."""
    src = re.sub(r"\ncwd = os\.getcwd\(\)\n", "\n", src)
    src = re.sub(r"\ncurrentdir = os\.path\.dirname\(.*?\)\n", "\n", src)
    src = src.replace("\nos.chdir(currentdir)\n", "\n")
    src = src.replace("\nos.chdir(cwd)\n", "\n")
    src = src.replace("import os,sys,inspect,collections", "import os,sys,collections")
    assert "chdir" not in src and "inspect." not in src, "gopy wrapper changed shape"
    return src


def free_error_strings(src):
    """gopy's wrapper of a Go function that returns only an error hands
    Python a C.CString ("" or the message) and never frees it: 32 bytes
    lost per call (ArenaFree, QueueClose...). Its wrapper of a function that
    returns a string frees the same pointer on both paths: use that."""
    src, n = re.subn(r"(?m)^add_checked_function\((mod, '\w+', retval\('char\*'\),)",
                     r"add_checked_string_function(\1", src)
    assert n and "def add_checked_string_function" in src, "gopy build.py changed shape"
    return src


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=os.path.join(ROOT, "python", "mpgo", "_native"))
    ap.add_argument("--python", default=sys.executable)
    args = ap.parse_args()
    env = go_env()
    tools(env)

    shutil.rmtree(GEN, ignore_errors=True)
    run([os.path.join(BIN, "gopy"), "gen", "-no-make", "-output=" + GEN,
         "-vm=" + args.python, "./pybind"], env=env)
    build_py = os.path.join(GEN, "build.py")
    src = open(build_py).read()
    with open(build_py, "w") as f:
        f.write(free_error_strings(src))
    run([args.python, "build.py"], cwd=GEN, env=env)

    # Link against libpython only when the interpreter itself uses the shared
    # library; a static interpreter provides the symbols when it loads us.
    gosrc = open(os.path.join(GEN, "pybind.go")).read()
    extra = {}
    if not sysconfig.get_config_var("Py_ENABLE_SHARED"):
        gosrc = re.sub(r"(?m)^#cgo LDFLAGS:.*$", "#cgo LDFLAGS: -lm", gosrc)
        extra["CGO_LDFLAGS"] = "-Wl,--unresolved-symbols=ignore-all"
    open(os.path.join(GEN, "pybind.go"), "w").write(gosrc)
    # gopy leaves the imports of its stubs to goimports, as its Makefile does.
    run([os.path.join(BIN, "goimports"), "-w", "pybind.go"], cwd=GEN, env=env)
    with open(os.path.join(GEN, "pybind_go.h"), "w") as f:
        f.write('#include "_cgo_export.h"\n')
    with open(os.path.join(GEN, "cflags.go"), "w") as f:
        f.write("package main\n\n// #cgo CFLAGS: -I${SRCDIR}/include\nimport \"C\"\n")

    capi = os.path.join(ROOT, "capi")
    for name in os.listdir(capi):
        if (name.endswith(".go") and name != "main.go" and not name.endswith("_test.go")) \
                or name.endswith(".c"):
            shutil.copy(os.path.join(capi, name), GEN)
    shutil.copytree(os.path.join(capi, "include"), os.path.join(GEN, "include"))
    cext = os.path.join(ROOT, "pybind", "cext")
    for name in os.listdir(cext):
        if name.endswith((".c", ".h")):
            shutil.copy(os.path.join(cext, name), GEN)

    os.makedirs(args.out, exist_ok=True)
    suffix = sysconfig.get_config_var("EXT_SUFFIX")
    target = os.path.join(args.out, "_pybind" + suffix)
    run(["go", "build", "-buildmode=c-shared", "-trimpath", "-ldflags=" + os.environ.get("MPGO_LDFLAGS", "-s -w"),
         "-o", target, "./_build/ext"], env=go_env(extra))
    hdr = os.path.splitext(target)[0] + ".h"
    if os.path.exists(hdr):
        os.remove(hdr)
    for name in ("pybind.py", "go.py"):
        src = open(os.path.join(GEN, name)).read()
        with open(os.path.join(args.out, name), "w") as f:
            f.write(unchdir(src))
    with open(os.path.join(args.out, "__init__.py"), "w") as f:
        f.write('"""Generated: the mpgo engine (gopy wrappers + one shared object)."""\n')
    print("built", target)


if __name__ == "__main__":
    main()
