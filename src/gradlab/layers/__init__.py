from .dense import *  # noqa: F401,F403
from .dense import __all__, __doc__  # noqa: F401
