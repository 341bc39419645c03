"""Development scripts. A package only so that mypy can tell scripts/sandbox.py
from the sandbox/ package (same module name otherwise)."""
