from .console import rankgen

rankgen()
