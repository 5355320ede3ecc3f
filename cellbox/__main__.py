from cellbox.cli.main import main

main()
