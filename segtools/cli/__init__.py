"""The command-line face: parses options, calls the library, writes results."""
