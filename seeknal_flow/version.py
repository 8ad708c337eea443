"""The version of seeknal-flow, defined once: pyproject.toml, ``seeknal --version``,
``seeknal_flow.__version__`` and the engine part of every fingerprint read it from here.

>>> isinstance(__version__, str)
True
"""

__version__ = "0.1.0"
