from deployconv.cli import main

main()
