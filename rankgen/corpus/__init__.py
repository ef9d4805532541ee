"""The HDF5 corpus: one schema (schema.py), a crash-safe writer and a lazy reader."""

from .reader import Corpus, open_corpus
from .writer import CorpusWriter

__all__ = ["Corpus", "CorpusWriter", "open_corpus"]
