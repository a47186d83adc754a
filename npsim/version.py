"""The npsim version alone: ``npsim --version`` reads it without importing the simulator."""

__version__ = "0.1.0"
