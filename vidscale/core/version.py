"""The package's version, where the package itself need not be imported to read it."""

__version__ = "0.1.0"
