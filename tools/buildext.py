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

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BUILD = os.path.join(ROOT, "_build")
BIN = os.path.join(BUILD, "bin")


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


def unvm(src):
    """Drop the command line gopy records (it names one interpreter): the
    wrappers are the same for every Python version, which share them."""
    return re.sub(r"(?m)^# gopy gen .*\n", "", src)


# Warnings are errors in every C file of the extension (ours, capi's, and the
# code gopy and pybindgen generate), on every supported Python.
CWARN = "-Wall -Wextra -Werror"
# gopy silences warnings wholesale; with them on, a call to a function this
# Python lacks would compile and install, then fail at import.
GOPY_CFLAGS_OFF = " -Wno-error -Wno-implicit-function-declaration -Wno-int-conversion"
# What pybindgen's pybind.c does that -Wextra flags and we cannot change: its
# method table casts METH_VARARGS|METH_KEYWORDS functions to PyCFunction (as
# CPython's docs do), and its PyModuleDef leaves m_slots to zero.
PYBINDGEN_PRAGMAS = (
    "/* mpgo (tools/buildext.py): pybindgen's idioms that -Wextra flags. */\n"
    '#pragma GCC diagnostic ignored "-Wcast-function-type"\n'
    '#pragma GCC diagnostic ignored "-Wmissing-field-initializers"\n')


def target_config(python):
    """EXT_SUFFIX and version of the interpreter we build for, which need not
    be the one running this script."""
    out = subprocess.run([python, "-c", "import sys, sysconfig; print(sysconfig.get_config_var("
                          "'EXT_SUFFIX')); print('%d.%d' % sys.version_info[:2])"],
                         check=True, capture_output=True, text=True).stdout.split()
    return out[0], out[1]


def check_loads(python, target):
    """Load both modules of the built object in the target interpreter, so
    that a symbol this Python lacks fails the build, not the user's import."""
    code = ("import importlib.machinery as m, importlib.util as u, sys\n"
            "for name in ('_pybind', '_fast'):\n"
            "    loader = m.ExtensionFileLoader(name, sys.argv[1])\n"
            "    u.module_from_spec(u.spec_from_file_location(name, sys.argv[1], loader=loader))\n")
    run([python, "-c", code, target])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=os.path.join(ROOT, "python", "mpgo", "_native"))
    ap.add_argument("--python", default=sys.executable)
    args = ap.parse_args()
    suffix, version = target_config(args.python)
    env = go_env()
    tools(env)

    # One directory per Python version: gopy's output differs between them.
    gen = os.path.join(BUILD, "ext-" + version)
    shutil.rmtree(gen, ignore_errors=True)
    run([os.path.join(BIN, "gopy"), "gen", "-no-make", "-output=" + gen,
         "-vm=" + args.python, "./pybind"], env=env)
    build_py = os.path.join(gen, "build.py")
    src = open(build_py).read()
    with open(build_py, "w") as f:
        f.write(free_error_strings(src))
    run([args.python, "build.py"], cwd=gen, env=env)

    gosrc = open(os.path.join(gen, "pybind.go")).read()
    assert GOPY_CFLAGS_OFF in gosrc, "gopy's cgo CFLAGS changed shape"
    gosrc = gosrc.replace(GOPY_CFLAGS_OFF, "")
    # Never link libpython, as no extension module on Linux does: the
    # interpreter that loads us provides its symbols (check_loads proves
    # they are all there), and a wheel must not depend on one libpython.
    gosrc = re.sub(r"(?m)^#cgo LDFLAGS:.*$", "#cgo LDFLAGS: -lm", gosrc)
    open(os.path.join(gen, "pybind.go"), "w").write(gosrc)
    pybind_c = os.path.join(gen, "pybind.c")
    src = open(pybind_c).read()
    with open(pybind_c, "w") as f:
        f.write(PYBINDGEN_PRAGMAS + src)
    # gopy leaves the imports of its stubs to goimports, as its Makefile does.
    run([os.path.join(BIN, "goimports"), "-w", "pybind.go"], cwd=gen, env=env)
    with open(os.path.join(gen, "pybind_go.h"), "w") as f:
        f.write('#include "_cgo_export.h"\n')
    with open(os.path.join(gen, "cflags.go"), "w") as f:
        f.write("package main\n\n// #cgo CFLAGS: -I${SRCDIR}/include %s\nimport \"C\"\n" % CWARN)

    capi = os.path.join(ROOT, "capi")
    for name in os.listdir(capi):
        if (name.endswith(".go") and name != "main.go" and not name.endswith("_test.go")) \
                or name.endswith(".c"):
            shutil.copy(os.path.join(capi, name), gen)
    shutil.copytree(os.path.join(capi, "include"), os.path.join(gen, "include"))
    cext = os.path.join(ROOT, "pybind", "cext")
    for name in os.listdir(cext):
        if name.endswith((".c", ".h")):
            shutil.copy(os.path.join(cext, name), gen)

    os.makedirs(args.out, exist_ok=True)
    target = os.path.join(args.out, "_pybind" + suffix)
    # The cgo tool links each package's C into a probe executable, where the
    # Python symbols are not defined yet.
    ldflags = {"CGO_LDFLAGS": "-Wl,--unresolved-symbols=ignore-all"}
    run(["go", "build", "-buildmode=c-shared", "-trimpath",
         "-ldflags=" + os.environ.get("MPGO_LDFLAGS", "-s -w"),
         "-o", target, "./" + os.path.relpath(gen, ROOT)], env=go_env(ldflags))
    hdr = os.path.splitext(target)[0] + ".h"
    if os.path.exists(hdr):
        os.remove(hdr)
    check_loads(args.python, target)
    for name in ("pybind.py", "go.py"):
        src = unvm(unchdir(open(os.path.join(gen, name)).read()))
        with open(os.path.join(args.out, name), "w") as f:
            f.write(src)
    with open(os.path.join(args.out, "__init__.py"), "w") as f:
        f.write('"""Generated: the mpgo engine (gopy wrappers + one shared object)."""\n')
    print("built", target)


if __name__ == "__main__":
    main()
