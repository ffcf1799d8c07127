"""migrator: move every user of a Clerk application into Kinde, safely and resumably."""

__version__ = "0.1.0"
