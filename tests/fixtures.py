"""Shared test fixtures: the header every chapter source starts with."""

#: The jupytext header of a MyST markdown chapter (what chapters/00-getting-started.md starts with).
MYST_HEADER = """\
---
jupytext:
  formats: ipynb,md:myst
  text_representation:
    extension: .md
    format_name: myst
    format_version: 0.13
kernelspec:
  display_name: Python 3 (ipykernel)
  language: python
  name: python3
---
"""
