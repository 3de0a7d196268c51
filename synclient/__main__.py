"""``python -m synclient``: the same as the ``synclient`` console script."""

from synclient.cli import main

if __name__ == "__main__":
    main()
