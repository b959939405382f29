"""What every benchmark script does with its result: write it as JSON to ``--out`` when one is
given (the folder is created), then print it."""
import json
from pathlib import Path
from typing import Optional, Union


def emit(report: dict, out: Optional[Union[str, Path]] = None) -> None:
    text = json.dumps(report, indent=2)
    if out:
        out = Path(out)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(text + "\n")
    print(text)
