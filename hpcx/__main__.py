from hpcx.cli import entry

entry()
