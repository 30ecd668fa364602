"""fwgen: bootable, verified ARM firmware from one board recipe."""

__version__ = "0.1.0"
