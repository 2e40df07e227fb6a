"""Imported first by every benchmark. Python puts a script's folder first on the import path,
and this folder holds `audit.py` and `verify.py`, which would hide the packages of those names:
take it off the path before anything of the project is imported, and put `bench/support` (the
benchmarks' shared helpers, whose names hide nothing) on it instead."""

import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:] = [entry for entry in sys.path if Path(entry or ".").resolve() != HERE]
sys.path.append(str(HERE / "support"))
