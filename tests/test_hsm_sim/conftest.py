from hsm_fixtures import hsm

__all__ = ["hsm"]
