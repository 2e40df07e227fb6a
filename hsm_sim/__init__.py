"""USBKeys over SoftHSM2: provisioning, PIN lockout, unplug and re-plug, latency and faults.

SoftHSM is a real PKCS#11 module but behaves like an always-present, never-locking token; this
package wraps it so that development, tests and demos meet what a certifying body's USBKeys do.
"""

from pathlib import Path

import pkcs11

from hsm_sim.bay import UsbKeyBay
from hsm_sim.library import SimulatedLibrary
from hsm_sim.softhsm import activate, init_token


def open_simulated_library(
    module_path: str, hsm_dir: Path, max_tries: int, latency_ms: float = 0.0
) -> SimulatedLibrary:
    """Load SoftHSM configured under `hsm_dir` and wrap it as a bay of USBKeys.

    SoftHSM reads its config when initialised: a module this process loaded before, for
    another directory, is initialised again.
    """
    config = activate(hsm_dir)
    library = pkcs11.lib(module_path)
    if _active_config.get(module_path) != config:
        library.reinitialize()
        _active_config[module_path] = config
    return SimulatedLibrary(library, hsm_dir, max_tries, latency_ms)


_active_config: dict[str, Path] = {}


__all__ = ["SimulatedLibrary", "UsbKeyBay", "init_token", "open_simulated_library"]
