# Developer shortcuts. The one that matters for teachers:
#   make notebooks   the course's lessons as Jupyter notebooks (no outputs) in tutorials/notebooks/
PYTHON ?= python3

.PHONY: notebooks test

notebooks:
	$(PYTHON) -m jupytext --set-kernel python3 --to notebooks//ipynb tutorials/[0-9][0-9]_*.py

test:
	$(PYTHON) -m pytest -q
