from hsm_fixtures import hsm
from signing_env import env

__all__ = ["env", "hsm"]
