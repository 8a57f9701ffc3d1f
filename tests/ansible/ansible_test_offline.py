"""Let ``ansible-test --venv`` bootstrap pip offline.

ansible-test downloads a get-pip script from ci-files.testing.ansible.com to seed pip in its virtual
environments. Where that host is unreachable, this puts a stand-in at the cache path ansible-test looks at
first (``~/.ansible/test/cache/get_pip_<version>.py``): it seeds pip with ``ensurepip`` and installs the
requested packages from the normal package index. An existing (real) cached script is left alone.

    python tests/ansible/ansible_test_offline.py
"""

from __future__ import annotations

import re
from pathlib import Path

STANDIN = '''"""Stand-in for get-pip.py written by gpucloud's tests/ansible/ansible_test_offline.py."""
import subprocess
import sys

args = [a for a in sys.argv[1:] if a not in ("--no-setuptools", "--no-wheel")]
subprocess.check_call([sys.executable, "-m", "ensurepip", "--upgrade", "--default-pip"])
subprocess.check_call([sys.executable, "-m", "pip", "install", *args])
'''


def pip_version() -> str:
    import ansible_test

    source = (Path(ansible_test.__file__).parent / "_internal" / "python_requirements.py").read_text()
    match = re.search(r"\bpip='([0-9.]+)'", source)
    if match is None:
        raise SystemExit("cannot find the pip version ansible-test bootstraps; update ansible_test_offline.py")
    return match.group(1)


def main() -> None:
    path = Path.home() / ".ansible" / "test" / "cache" / f"get_pip_{pip_version().replace('.', '_')}.py"
    if path.exists():
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(STANDIN)
    print(f"wrote pip bootstrap stand-in {path}")


if __name__ == "__main__":
    main()
