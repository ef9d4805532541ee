from rankgen.console import train

train()
