"""The package version, in a module that imports nothing (read by the build and by neurec)."""
__version__ = "0.1.0"
