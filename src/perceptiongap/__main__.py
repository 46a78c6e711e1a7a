from perceptiongap.cli import main

main()
