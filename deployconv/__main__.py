from deployconv.cli.app import main

main()
