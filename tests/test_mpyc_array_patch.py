"""runtime/launch/mpyc_setup.py replaces MPyC 0.11's finite-field array constructor by the same one
without its NumPy version check per array (spec/runtime.md, "Fixed cost of a small run"): the arrays,
their reduction and whether they share the given memory are those of MPyC's own constructor.
One MPyC process in a subprocess (MPyC reads sys.argv when imported)."""
from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

SCRIPT = textwrap.dedent('''
    import sys
    sys.argv = [sys.argv[0]]
    import numpy as np
    from mpyc.runtime import mpc
    from mpyc.finfields import FiniteFieldArray
    from insightql.runtime.launch import mpyc_setup

    field = mpc.SecInt(40).field
    inputs = [lambda: [[1, 2], [3, -4]], lambda: np.array([5, field.modulus + 6, -7], dtype=object),
              lambda: np.array([8, 9], dtype=np.int64)]

    def made(check, copy):
        out = []
        for make in inputs:
            value = make()
            a = field.array(value, check=check) if copy is None else FiniteFieldArray.__new__(field.array)
            if copy is not None:
                a.__init__(value, check=check, copy=copy)
            out.append((a.value.tolist(), a.value.shape, isinstance(value, np.ndarray) and np.shares_memory(a.value, value)))
        return out

    cases = [(check, copy) for check in (True, False) for copy in (None, False, True)]
    before = [made(*c) for c in cases]
    original = FiniteFieldArray.__init__
    mpyc_setup._array_without_version_check()
    assert FiniteFieldArray.__init__ is not original, "not replaced (MPyC other than 0.11?)"
    after = [made(*c) for c in cases]
    assert before == after, (before, after)
    mpyc_setup._array_without_version_check()  # again: leaves the replacement as it is
    print("same arrays")
''')


def test_array_constructor_without_version_check_makes_the_same_arrays():
    out = subprocess.run([sys.executable, "-c", SCRIPT], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0 and "same arrays" in out.stdout, out.stderr[-3000:]
