from signing_env import env
from verify_support import demo

__all__ = ["demo", "env"]
