"""`python -m delete_job.cli`."""

from delete_job.cli import main

if __name__ == "__main__":
    main()
