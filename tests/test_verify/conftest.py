from verify_support import demo

__all__ = ["demo"]
