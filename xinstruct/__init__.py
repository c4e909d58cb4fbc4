"""xinstruct: cross-lingual instruction data (English instruction, native web-text response) with humans in the loop."""

__version__ = "0.1.0"
