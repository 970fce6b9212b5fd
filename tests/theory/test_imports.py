"""`import soptheory` stays light: no torch (issue 8), checked in a fresh interpreter."""

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_importing_soptheory_and_its_modules_does_not_import_torch():
    code = (
        "import sys; import soptheory, soptheory.phase, soptheory.certificate; "
        "print(sorted(m for m in sys.modules if m == 'torch' or m.startswith(('torch.', 'sopdeep'))))"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True,
                         check=True, env={"PYTHONPATH": str(REPO), "PATH": ""})
    assert out.stdout.strip() == "[]", out.stdout
