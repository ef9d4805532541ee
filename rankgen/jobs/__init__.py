"""One module per generating command, each with its job dataclass, its per-source `work` function
and its entry point (distort, crops, density, annotate), all written through base.write_corpus.
The CLI only parses options and calls these; `rankgen.distort(...)` etc. are the same functions."""
