"""PyTorch trainer for rankgen corpora: all-pairs ranking, multi-task regression, DCR, counting."""
