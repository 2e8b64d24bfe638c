"""wganx-example-plugin: the ``conv-small`` architecture and the ``gp-onesided`` regularizer.

Importing this package imports neither wganx's backends nor any deep-learning framework;
wganx loads :mod:`wganx_example.plugin` through the ``wganx`` entry-point group.
"""
__version__ = "0.1.0"
