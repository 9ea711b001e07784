from carebed.cli import main

main()
