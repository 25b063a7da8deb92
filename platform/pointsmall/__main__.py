from pointsmall.cli import main

main()
