"""`python -m deleter_cli`."""

from deleter_cli import main

if __name__ == "__main__":
    main(prog_name="python -m deleter_cli")
