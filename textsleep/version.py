"""The package version, importable from anywhere in the package without a circular import."""

__version__ = "0.1.0"
