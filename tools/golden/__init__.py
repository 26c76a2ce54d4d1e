"""Golden outputs of the official model code on seeded weights; see `recipe.py` and `make_golden.py`."""
