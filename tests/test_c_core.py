"""Builds the C tests of the core (tests/c) against csrc/core and runs them."""

import functools
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import scipy_openblas32 as openblas

ROOT = Path(__file__).resolve().parents[1]


@functools.cache
def native_flag(cc: str) -> tuple:
    """-march=native where the compiler takes it, as the release build (setup.py) does: the C
    tests then run the AVX2 kernels that pynn itself runs."""
    r = subprocess.run([cc, "-march=native", "-x", "c", "-c", "-", "-o", os.devnull],
                       input="int main(void) { return 0; }\n", capture_output=True, text=True)
    return ("-march=native",) if r.returncode == 0 else ()


def build_c_test(name: str, tmp_path: Path) -> Path:
    cc = os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc")
    assert cc, "a C compiler is needed for the core's C tests"
    exe = tmp_path / name
    cmd = [cc, "-std=c11", "-O1", "-g", "-Wall", "-Wextra", "-Werror", "-fopenmp", *native_flag(cc),
           f"-I{ROOT / 'csrc' / 'core'}", f"-I{openblas.get_include_dir()}",
           str(ROOT / "tests" / "c" / f"{name}.c"),
           *map(str, sorted((ROOT / "csrc" / "core").glob("*.c"))),
           f"-L{openblas.get_lib_dir()}", f"-l{openblas.get_library()}",
           f"-Wl,-rpath,{openblas.get_lib_dir()}", "-lm", "-o", str(exe)]
    r = subprocess.run(cmd, capture_output=True, text=True)
    assert r.returncode == 0, f"C test build failed:\n{' '.join(cmd)}\n{r.stderr}"
    return exe


C_TESTS = sorted(p.stem for p in (ROOT / "tests" / "c").glob("test_*.c"))


@pytest.mark.parametrize("name", C_TESTS)
def test_core_c_suite_passes(name, tmp_path):
    exe = build_c_test(name, tmp_path)
    r = subprocess.run([str(exe)], capture_output=True, text=True, timeout=120)
    sys.stdout.write(r.stdout)
    assert r.returncode == 0, r.stdout + r.stderr
    assert " passed, 0 failed" in r.stdout
