from hpcx.cli import main

main()
