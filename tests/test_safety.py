"""Nothing the course loads may execute code: no pickle, no torch.load without weights_only=True."""
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
UNSAFE = re.compile(r"pickle\.loads?\(|torch\.load\((?![^)]*weights_only\s*=\s*True)")


def sources():
    for folder in ("lesson_lib", "app", "notebooks", "bench"):
        for path in sorted((ROOT / folder).rglob("*")):
            if path.suffix in (".py", ".ipynb") and ".ipynb_checkpoints" not in path.parts:
                yield path


def test_the_scan_catches_what_it_should():
    assert UNSAFE.search("state = torch.load(path)")
    assert UNSAFE.search("pickle.load(f)")
    assert not UNSAFE.search("torch.load(path, map_location='cpu', weights_only=True)")


def test_no_unsafe_loads_in_the_sources():
    found = [f"{p.relative_to(ROOT)}:{n}: {line.strip()}" for p in sources()
             for n, line in enumerate(p.read_text(encoding="utf-8").splitlines(), 1) if UNSAFE.search(line)]
    assert list(sources()), "the scan found no source files: the paths are wrong"
    assert found == []
