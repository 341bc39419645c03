"""Reliability suite: fault matrix, bad input and security cases (dev tooling, not shipped).

``scripts/faults.py`` runs the cases and prints the tables of docs/reliability.md;
``tests/reliability/`` runs the very same case functions as pytest tests.
"""
