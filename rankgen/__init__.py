"""rankgen: ranked training corpora from unlabeled images.

The generating commands are Python calls with the same defaults and errors as the CLI; each writes
one corpus and returns its Summary:

    import rankgen
    rankgen.distort("corpus.h5", levels=5)                 # rankgen distort
    rankgen.crops("crops.h5", k=5, s=0.75, r=8)            # rankgen crops
    rankgen.density("density.h5")                          # rankgen density
    rankgen.annotate("annotate.h5", annotators=4)          # rankgen annotate
    rankgen.materialize("compact.h5", "full.h5")           # rankgen materialize
    rankgen.merge(["part-0.h5", "part-1.h5"], "all.h5")    # rankgen merge
"""

__version__ = "0.1.0"

# Imported on first use, so `import rankgen` (and `rankgen --help`) stays light.
_API = {"distort": "distort", "crops": "crops", "density": "density", "annotate": "annotate",
        "materialize": "materialize", "merge": "merge"}

__all__ = ["__version__", *_API]


def __getattr__(name: str):
    if name in _API:
        import importlib

        function = getattr(importlib.import_module(f"{__name__}.jobs.{_API[name]}"), name)
        globals()[name] = function
        return function
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted([*globals(), *_API])
