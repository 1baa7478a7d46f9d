"""The example script's own requirement (sweeps/own-script/requirements.txt installs it from this folder)."""


def round4(x: float) -> float:
    return round(x, 4)
