"""Redaction on a planted set: recall per kind of personal data, precision on text that holds none, speed.

Tacit's regex redaction (``tacit.core.privacy.redact``) against Microsoft Presidio's pattern recognizers
(e-mail, credit card, IBAN, IP, phone; Presidio has none for credentials), on the same texts in one run.
The planted set is generated (seeded): each text hides one value of one kind in a sentence; the clean set
is prose and code with dates, decimals, versions, ISBNs, ids, times and C++ names, none of them personal.
A value counts as found when the output no longer contains it (regex) or a detected span covers it
(Presidio). Presidio's NLP-based recognisers need a spaCy model, which cannot be installed offline here, so
only its pattern recognisers run (they are the ones for these kinds).

    pip install presidio-analyzer   # optional; without it only the regex is measured
    python bench/redaction.py [--per-kind 200]
"""

from __future__ import annotations

import argparse
import logging
import random
import string
import time
from collections.abc import Callable

from tacit.core.privacy import redact

SENTENCES = ["my {} is on file", "please use {} for this", "it failed for {} again.", "({}) was wrong",
             "send it to {}, thanks"]
CLEAN = [
    "start_date='2005-01-01' and end 2024-01-15T10:30:00", "pi is 3.14159265358979 and e 2.718281828459045",
    "version 3.11.4, in 2024, 42 items, 10.5%", "app.run(host='0.0.0.0') or 127.0.0.1:8000",
    "ISBN 978-3-16-148410-0, and the id 1234567890123", "order 12345678901234567 shipped",
    "at 10:30:45, std::vector and abc::def, ::1 is loopback", "x = 1e-9 and 1.0.0.1.2",
    "sk-learn and scikit-learn, task-1234", "the loop ran 1000000 times in 0.25 s",
    "SELECT * FROM t WHERE id IN (1, 2, 3) LIMIT 500", "chmod 755 run.sh && sleep 30",
]


def luhn_complete(digits: str) -> str:
    total = sum((int(c) * 2 - 9 if int(c) * 2 > 9 else int(c) * 2) if i % 2 == 0 else int(c)
                for i, c in enumerate(reversed(digits)))
    return digits + str((10 - total % 10) % 10)


def card(digits: str) -> str:
    return " ".join(digits[i:i + 4] for i in range(0, len(digits), 4))


def iban(rng: random.Random) -> str:
    bban = "".join(rng.choices(string.digits, k=18))
    number = int("".join(str(int(c, 36)) for c in bban + "DE00"))
    compact = f"DE{98 - number % 97:02d}{bban}"
    return " ".join(compact[i:i + 4] for i in range(0, len(compact), 4))


def planted_values(rng: random.Random) -> dict[str, Callable[[], str]]:
    word = lambda n: "".join(rng.choices(string.ascii_lowercase, k=n))  # noqa: E731
    return {
        "email": lambda: f"{word(6)}.{word(4)}@{word(7)}.{rng.choice(['com', 'de', 'io', 'co.uk'])}",
        "phone": lambda: rng.choice([f"+1 415 555 {rng.randint(1000, 9999)}",
                                     f"+44 20 7946 {rng.randint(1000, 9999)}",
                                     f"(030) {rng.randint(100, 999)} {rng.randint(1000, 9999)}"]),
        "card": lambda: card(luhn_complete("4" + "".join(rng.choices(string.digits, k=14)))),
        "iban": lambda: iban(rng),
        "ipv4": lambda: ".".join(str(rng.randint(1, 254)) for _ in range(4)),
        "ipv6": lambda: rng.choice(["2001:db8::", "fe80::"]) + ":".join(f"{rng.randint(1, 65535):x}" for _ in range(3)),
        "secret": lambda: rng.choice([  # the shapes these services issue
            "sk-proj-" + "".join(rng.choices(string.ascii_letters + string.digits, k=40)),
            "ghp_" + "".join(rng.choices(string.ascii_letters + string.digits, k=36)),
            "AKIA" + "".join(rng.choices(string.ascii_uppercase + string.digits, k=16))]),
    }


def planted_set(per_kind: int, seed: int = 0) -> list[tuple[str, str, str]]:
    rng = random.Random(seed)
    return [(kind, value, rng.choice(SENTENCES).format(value))
            for kind, make in planted_values(rng).items() for value in (make() for _ in range(per_kind))]


def presidio_finder() -> Callable[[str], list[tuple[int, int]]] | None:
    try:
        from presidio_analyzer.predefined_recognizers import (
            CreditCardRecognizer, EmailRecognizer, IbanRecognizer, IpRecognizer, PhoneRecognizer)
    except ImportError:
        return None
    logging.getLogger("tldextract").setLevel(logging.CRITICAL)  # it tries to download a suffix list
    recognizers = [EmailRecognizer(), CreditCardRecognizer(), IbanRecognizer(), IpRecognizer(), PhoneRecognizer()]

    def spans(text: str) -> list[tuple[int, int]]:
        return [(r.start, r.end) for recognizer in recognizers
                for r in recognizer.analyze(text, entities=recognizer.supported_entities, nlp_artifacts=None)]

    return spans


def measure(name: str, found: Callable[[str, str], bool], clean_kept: Callable[[str], bool],
            planted: list[tuple[str, str, str]]) -> None:
    started = time.perf_counter()
    hits: dict[str, list[bool]] = {}
    for kind, value, text in planted:
        hits.setdefault(kind, []).append(found(text, value))
    kept = [clean_kept(text) for text in CLEAN]
    seconds = time.perf_counter() - started
    recalls = " ".join(f"{kind} {sum(h) / len(h):.2f}" for kind, h in hits.items())
    total = sum(sum(h) for h in hits.values()) / len(planted)
    print(f"{name:9s} recall {total:.3f} ({recalls}); clean texts kept {sum(kept)}/{len(kept)}; "
          f"{(len(planted) + len(CLEAN)) / seconds:,.0f} texts/s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--per-kind", type=int, default=200)
    args = parser.parse_args()
    planted = planted_set(args.per_kind)
    measure("regex", lambda text, value: value not in redact(text), lambda text: redact(text) == text, planted)
    spans = presidio_finder()
    if spans is None:
        print("presidio: not installed (pip install presidio-analyzer)")
        return
    spans("warm up bob@example.com")

    def covered(text: str, value: str) -> bool:
        start = text.index(value)
        return any(s <= start and start + len(value) <= e for s, e in spans(text))

    measure("presidio", covered, lambda text: not spans(text), planted)


if __name__ == "__main__":
    main()
