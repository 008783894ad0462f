"""The directory `python -m mpgo` puts at the front of PYTHONPATH for its
children, for the sitecustomize module in it (see mpgo._alias.propagate)."""
