"""Builds pynn._core: the C core (csrc/core) and its CPython extension (csrc/module).

Environment variables:
  PYNN_BLAS=system   link a system OpenBLAS (-lopenblas, unprefixed cblas_* names) instead of
                     PyPI's scipy-openblas32.
  PYNN_PORTABLE=1    do not optimise for the building CPU (-march=native is the default): build
                     for x86-64-v3 (AVX2 and FMA), for wheels that run on every x86-64 CPU
                     since 2013; the AVX-512 and AVX512-BF16 kernels are chosen at run time
                     from CPUID in either build.
  PYNN_DEBUG=1       -O0 -g, for debuggers.
  PYNN_SANITIZE=1    AddressSanitizer and UndefinedBehaviorSanitizer (-O1 -g, UB aborts), built
                     under build/sanitize so that a normal build's objects are never reused. Run
                     Python with LD_PRELOAD=$(cc -print-file-name=libasan.so) and
                     ASAN_OPTIONS=detect_leaks=0 (CPython leaves memory to the OS at exit).
"""

import os
import subprocess
import sys
import tempfile
from glob import glob

import numpy as np
from setuptools import Extension, setup


def compiler_accepts(flag: str) -> bool:
    """Whether the C compiler accepts `flag` (tried on an empty file)."""
    cc = os.environ.get("CC", "cc")
    with tempfile.TemporaryDirectory() as d:
        src = os.path.join(d, "t.c")
        with open(src, "w") as f:
            f.write("int main(void) { return 0; }\n")
        r = subprocess.run([cc, flag, "-c", src, "-o", os.path.join(d, "t.o")],
                           capture_output=True)
        return r.returncode == 0


def blas_flags():
    """(include_dirs, library_dirs, libraries, macros) for the chosen OpenBLAS."""
    if os.environ.get("PYNN_BLAS", "").lower() == "system":
        return [], [], ["openblas"], [("PN_SYSTEM_BLAS", "1")]
    import scipy_openblas32 as ob

    # No rpath: pynn/__init__.py imports scipy_openblas32 first, which loads the library with
    # RTLD_GLOBAL, so the extension's dependency on libscipy_openblas.so resolves by soname.
    return [ob.get_include_dir()], [ob.get_lib_dir()], [ob.get_library()], []


inc, libdirs, libs, macros = blas_flags()
# -fno-trapping-math: the core never reads floating-point exception flags, and without the flag
# GCC will not turn a ternary between float expressions into a vector blend, so the inline exp,
# tanh and erf of csrc/core/vmath.h would not vectorise (results do not change: it is not
# -ffast-math).
cflags = ["-std=c11", "-Wall", "-Wextra", "-fopenmp", "-fno-math-errno", "-fno-trapping-math"]
ldflags = ["-fopenmp"]
options = {}
native = not os.environ.get("PYNN_PORTABLE") and compiler_accepts("-march=native")
# the portable baseline: AVX2 and FMA (the core's own GEMM tile needs them)
portable = [] if native or not compiler_accepts("-march=x86-64-v3") else ["-march=x86-64-v3"]
if os.environ.get("PYNN_SANITIZE"):
    sanitize = ["-fsanitize=address,undefined", "-fno-sanitize-recover=undefined"]
    cflags += [*sanitize, "-fno-omit-frame-pointer", "-O1", "-g"]
    # the same instruction set as the release build, so the sanitizers check its AVX2 kernels
    cflags += ["-march=native"] if native else []
    ldflags += sanitize
    # setuptools skips an extension whose .so is newer than its sources, whatever the flags.
    options = {"build": {"build_base": os.path.join("build", "sanitize")}}
elif os.environ.get("PYNN_DEBUG"):
    cflags += ["-O0", "-g"]
else:
    cflags += ["-O3", *(["-march=native"] if native else portable)]

sources = sorted(glob("csrc/core/*.c")) + sorted(glob("csrc/module/*.c"))

ext = Extension(
    "pynn._core",
    sources=sources,
    include_dirs=["csrc/core", "csrc/module", np.get_include(), *inc],
    library_dirs=libdirs,
    libraries=libs,
    define_macros=macros,
    extra_compile_args=cflags,
    extra_link_args=ldflags,
)

if sys.platform == "win32":
    raise SystemExit("pynn builds on Linux and macOS with a C11 compiler and OpenMP")

setup(ext_modules=[ext], options=options)
