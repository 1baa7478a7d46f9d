"""Writes names.sh, the bash face of names.json: ``python -m contract.names_sh [--check]``.

bootstrap.sh sources it for the exit codes it shares with the job runner, the job URI schemes, and the
names it completes the termination lifecycle action with (the hook, and the group name template with its
``{sweep}`` and ``{config}`` placeholders), and the names of the env variables it sets for the job runner
(``SPOT_SWEEP_ENV_<KEY>``, from names.json ``env``).
``--check`` exits 1 when the file on disk is not what names.json gives (the conformance tests run it),
so the two never drift.
"""

from __future__ import annotations

import re
import sys

from . import HERE, NAMES

TARGET = HERE / "names.sh"


def render() -> str:
    def snake(name: str) -> str:
        return re.sub(r"(?<!^)(?=[A-Z])", "_", name).upper()

    lines = [
        "# Generated from names.json by `python -m contract.names_sh`; do not edit.",
        "# shellcheck shell=bash disable=SC2034",
    ]
    for component, codes in NAMES["exitCodes"].items():
        for name, code in codes.items():
            lines.append(f"SPOT_SWEEP_EXIT_{component.upper()}_{snake(name)}={code}")
    for scheme, prefix in NAMES["jobUriSchemes"].items():
        lines.append(f"SPOT_SWEEP_JOB_URI_{scheme.upper()}={prefix}")
    lines.append(f"SPOT_SWEEP_LIFECYCLE_HOOK_TERMINATION={NAMES['lifecycleHooks']['termination']}")
    lines.append(f"SPOT_SWEEP_GROUP_NAME='{NAMES['groupName']}'")
    for key, env_name in NAMES["env"].items():
        if not key.startswith("$"):
            lines.append(f"SPOT_SWEEP_ENV_{snake(key)}={env_name}")
    return "\n".join(lines) + "\n"


def main(argv: list[str]) -> int:
    text = render()
    if "--check" in argv:
        if not TARGET.is_file() or TARGET.read_text() != text:
            print(f"{TARGET} is out of date: run `python -m contract.names_sh`", file=sys.stderr)
            return 1
        return 0
    TARGET.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
