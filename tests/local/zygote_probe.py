"""Run by tests/local/test_zygote.py as `python -m tests.local.zygote_probe`, forked by a warm
launcher: it writes what it sees, then exits 7 (or sleeps, to be killed)."""

import os
import sys
import time

if sys.argv[1:] == ["sleep"]:
    time.sleep(30)
with open(os.environ["OUT"], "w") as f:
    f.write(
        f"argv0={sys.argv[0]}\nargs={' '.join(sys.argv[1:])}\n"
        f"ONLY_HERE={os.environ.get('ONLY_HERE', '-')}\nHOME={os.environ.get('HOME', '-')}\n"
        f"cwd={os.getcwd()}\nsid={os.getsid(0)}\nname={__name__}\n"
    )
sys.exit(7)
