import sys

try:
    from vidscale.cli import main
except KeyboardInterrupt:  # Ctrl-C while Python is still loading the command line
    sys.stderr.write("vidscale: interrupted\n")
    sys.exit(130)

sys.exit(main())
