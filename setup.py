"""Build and install mpgo.

`pip install .` needs Go (>= 1.24) on PATH. The Go engine, gopy's wrappers,
the C ABI and the C fast paths are compiled by tools/buildext.py into ONE
shared object inside the package (a process can hold only one Go runtime).
"""
import os
import subprocess
import sys

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

HERE = os.path.dirname(os.path.abspath(__file__))


class GoBuildExt(build_ext):
    """Build the engine with Go instead of compiling C sources."""

    def run(self):
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
    python_requires=">=3.9",
    package_dir={"": "python"},
    packages=["mpgo", "mpgo.dummy", "mpgo._boot"],
    ext_modules=[Extension("mpgo._native._pybind", sources=[])],
    cmdclass={"build_ext": GoBuildExt},
    extras_require={"test": ["pytest", "numpy"],
                    # dev only: bench/run.py compares the pool cases with them
                    "bench": ["numpy", "mpire", "loky"]},
    zip_safe=False,
)
