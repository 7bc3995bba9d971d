from mlplane.cli.main import main

main()
