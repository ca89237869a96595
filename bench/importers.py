"""How fast ``tacit replay`` turns a real log file into Kafka records, without a broker, in one run.

    python bench/importers.py [PATH] [--format hh] [--repeat 3]

Measures the importer (decompress, parse, map to chat events, validate, encode key and value) against the
floor of any JSONL importer: decompressing and ``json.loads``-ing the same lines. Default PATH: the
HH-RLHF helpful-base test split in ../shared/data.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from tacit.ingest.events import encode_event
from tacit.readers.importers import ImportReport, open_binary, read_conversations

DEFAULT = Path(__file__).resolve().parents[2] / "shared" / "data" / "hh-rlhf" / "helpful-base_test.jsonl.gz"


def parse_only(path: Path) -> int:
    """Records decoded: the baseline."""
    with open_binary(path) as lines:
        return sum(1 for line in lines if json.loads(line))


def import_and_encode(path: Path, format_name: str | None) -> int:
    """Chat events ready to send."""
    events = 0
    for conversation in read_conversations(path, "bench", ImportReport(), format_name):
        for event in conversation:
            encode_event(event)
        events += len(conversation)
    return events


def best_seconds(run, repeat: int) -> tuple[float, int]:
    timings = []
    for _ in range(repeat):
        started = time.perf_counter()
        count = run()
        timings.append(time.perf_counter() - started)
    return min(timings), count


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("path", type=Path, nargs="?", default=DEFAULT)
    parser.add_argument("--format", dest="format_name")
    parser.add_argument("--repeat", type=int, default=3, help="runs of each; the fastest counts")
    args = parser.parse_args()

    base_s, records = best_seconds(lambda: parse_only(args.path), args.repeat)
    tacit_s, events = best_seconds(lambda: import_and_encode(args.path, args.format_name), args.repeat)
    print(f"{args.path.name}: {records} records, {events} chat events")
    print(f"json.loads only      {records / base_s:10.0f} records/s  {events / base_s:10.0f} events/s")
    print(f"import + encode      {records / tacit_s:10.0f} records/s  {events / tacit_s:10.0f} events/s")
    print(f"ratio (import/baseline) {base_s / tacit_s:.2f}x")


if __name__ == "__main__":
    main()
