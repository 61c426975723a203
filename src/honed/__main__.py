from honed.cli import console

console()
