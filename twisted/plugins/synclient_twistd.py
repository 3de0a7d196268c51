"""twistd plugin ``synclient``: ``twistd -n synclient --server URL --local-path DIR``."""

from twisted.application.service import ServiceMaker

synclient = ServiceMaker(
    "synclient",
    "synclient.tap",
    "Two-way sync of a folder with a caddytw file_sync server.",
    "synclient",
)
