"""Keep the Pulumi SDK's provider serialisation from growing the pickler with every resource.

``pulumi.dynamic.dynamic.serialize_provider`` (called once per dynamic resource constructed) replaces
``pickle._Pickler._batch_setitems`` with a sorting wrapper around the *current* one and restores only
``pickle.Pickler`` afterwards. Each resource therefore adds one wrapper level, and around the 980th resource in a
process every pickle raises RecursionError (pulumi/pulumi#17803, present up to the newest SDK on PyPI).

:func:`pickler_restored` puts the two patched ``_Pickler`` attributes back as they were, so serialising a
resource leaves the pickler exactly as it found it. The sorting still applies while the SDK's own call runs, so
serialised providers stay deterministic.
"""

from __future__ import annotations

import pickle
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, Final

_PATCHED_ATTRIBUTES: Final = ("_batch_setitems", "save_dict")


@contextmanager
def pickler_restored() -> Iterator[None]:
    """Run a block that may call ``serialize_provider``; the pure-Python pickler is unchanged afterwards."""
    pickler: Any = pickle._Pickler  # the SDK patches this private class
    saved = {name: pickler.__dict__[name] for name in _PATCHED_ATTRIBUTES}
    try:
        yield
    finally:
        for name, original in saved.items():
            setattr(pickler, name, original)
