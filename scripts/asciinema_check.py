"""Read an asciicast file with asciinema's own parser (PyPI asciinema 2.x) and print what it
holds as one JSON object; exit 1 with the reason when asciinema cannot read it or its events
are out of order. Used by the recording tests (connector/tests/recording.rs,
control/tests/recordings.rs)."""

import json
import sys

from asciinema import asciicast


def main(path: str) -> int:
    try:
        with asciicast.open_from_url(path) as cast:
            header = cast.v2_header
            last = 0.0
            summary = {"version": cast.version, "width": header.get("width"),
                       "height": header.get("height"), "env": header.get("env", {}),
                       "command": header.get("command"), "title": header.get("title"),
                       "timestamp": header.get("timestamp"),
                       "output": "", "input": "", "resizes": [], "events": 0}
            for time, kind, data in cast.events():
                if time < last:
                    print(f"event {summary['events']}: time {time} before {last}", file=sys.stderr)
                    return 1
                last = time
                summary["events"] += 1
                if kind == "o":
                    summary["output"] += data
                elif kind == "i":
                    summary["input"] += data
                elif kind == "r":
                    summary["resizes"].append(data)
                else:
                    print(f"unknown event type {kind!r}", file=sys.stderr)
                    return 1
            summary["duration"] = last
    except (asciicast.LoadError, ValueError) as e:
        print(f"asciinema cannot read {path}: {e}", file=sys.stderr)
        return 1
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
