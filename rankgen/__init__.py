"""rankgen: ranked training corpora from unlabeled images."""

__version__ = "0.1.0"
