import sys

from backend.cli import main

# `python -m backend COMMAND …` writes the JSON-lines protocol (what the plugin reads).
# `python -m backend --human [--events FILE] [--verbose] COMMAND …` shows the same run as text
# (`make demo`); `--json` in front is accepted and changes nothing.
if sys.argv[1:2] == ["--human"]:
    from backend.console import run_human
    sys.exit(run_human(main, sys.argv[2:]))
sys.exit(main(sys.argv[2:] if sys.argv[1:2] == ["--json"] else None))
