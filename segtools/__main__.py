"""``python -m segtools`` runs the command line."""

from segtools.cli.app import main

if __name__ == "__main__":
    main()
