"""Build and install mpgo.

`pip install .` needs Go (>= 1.26) on PATH. The Go engine, gopy's wrappers,
the C ABI and the C fast paths are compiled by tools/buildext.py into ONE
shared object inside the package (a process can hold only one Go runtime).
`make wheel` makes wheels that need neither Go nor a compiler.
"""
import os
import platform
import shutil
import subprocess
import sys
import sysconfig

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "tools"))
import pythons  # noqa: E402  (tools/pythons.py: the CPython versions CI tests)


class GoBuildExt(build_ext):
    """Build the engine with Go instead of compiling C sources."""

    def run(self):
        # pip refuses other versions from python_requires; this stops a build
        # that bypasses it (--ignore-requires-python, setup.py run by hand).
        if sys.version_info[:2] not in pythons.SUPPORTED or platform.python_implementation() != "CPython":
            sys.exit("mpgo supports CPython %s, not %s %d.%d."
                     % (", ".join("%d.%d" % v for v in pythons.SUPPORTED),
                        platform.python_implementation(), *sys.version_info[:2]))
        if sysconfig.get_config_var("Py_GIL_DISABLED"):
            sys.exit("mpgo supports CPython's default build, not the free-threaded one "
                     "(its C fast paths rely on the GIL).")
        if not shutil.which("go"):
            sys.exit("mpgo builds its engine with Go (>= 1.26), and no `go` is on PATH: "
                     "install Go (https://go.dev/dl/) or install a wheel (`make wheel`).")
        out = os.path.join(os.path.abspath(self.build_lib), "mpgo", "_native")
        if self.inplace:
            out = os.path.join(HERE, "python", "mpgo", "_native")
        subprocess.run([sys.executable, os.path.join(HERE, "tools", "buildext.py"),
                        "--out", out, "--python", sys.executable], check=True, cwd=HERE)


setup(
    name="mpgo",
    version="0.1.0",
    description="Python's multiprocessing on a Go engine",
    long_description=open(os.path.join(HERE, "README.md")).read(),
    long_description_content_type="text/markdown",
    license="BSD-3-Clause",
    python_requires=pythons.requires(),
    classifiers=["Programming Language :: Python :: 3 :: Only",
                 "Programming Language :: Python :: Implementation :: CPython",
                 "Operating System :: POSIX :: Linux"]
                + ["Programming Language :: Python :: %d.%d" % v for v in pythons.SUPPORTED],
    # cloudpickle: what a 'fork' child needs of __main__ travels by value
    # (see README, "Differences from the standard library").
    install_requires=["cloudpickle>=3.0"],
    package_dir={"": "python"},
    packages=["mpgo", "mpgo.dummy", "mpgo.cluster", "mpgo._boot"],
    ext_modules=[Extension("mpgo._native._pybind", sources=[])],
    cmdclass={"build_ext": GoBuildExt},
    extras_require={"test": ["pytest", "numpy"],
                    # mpgo.cluster: the same programs on a Dask cluster
                    "cluster": ["distributed>=2024.1"],
                    # dev only: bench/run.py compares the pool cases with them
                    "bench": ["numpy", "mpire", "loky"]},
    zip_safe=False,
)
