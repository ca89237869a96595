"""What the worker does to personal data before anything is labeled or stored.

Message texts lose e-mail addresses, payment card numbers, IBANs, IP addresses, phone numbers and credentials (API
keys and tokens of the common services; each replaced by a tag such as ``[EMAIL]``, so a labeler still
sees that something was there). Numbers that are not personal stay as they are: dates, decimals, versions,
ISBNs, bare digit runs (ids, numbers in code), the loopback and unspecified addresses of code, because a
rewritten assistant reply loses its content for good. Strings in an event's metadata are redacted alike.
User ids become an HMAC whose key is derived from a secret and the tenant: the same user keeps the same pseudonym within a tenant (the
trainer splits by user), two tenants never share one, and without the secret a pseudonym can't be reversed
by hashing guessed ids. Both steps are deterministic, so a redelivered event is rewritten identically and
still hits the same unique keys.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from dataclasses import dataclass
from typing import Any

from tacit.core.domain import ChatEvent, SignalEvent

EMAIL = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+")
CARD = re.compile(r"(?<![\w-])\d(?:[ -]?\d){12,18}(?![\w-])")
IPV4 = re.compile(r"(?<![\w.])(?:(?:25[0-5]|2[0-4]\d|1?\d?\d)\.){3}(?:25[0-5]|2[0-4]\d|1?\d?\d)(?!\w|\.\d)")
HEX = "[0-9A-Fa-f]{1,4}"
IPV6 = re.compile(  # the full form, or one "::" standing for the zero groups
    rf"(?<![\w:])(?:(?:{HEX}:){{7}}{HEX}|(?:{HEX}:){{1,6}}(?::{HEX}){{1,6}}|(?:{HEX}:){{1,7}}:|::(?:{HEX}:){{0,6}}{HEX})"
    r"(?![\w:])")
IBAN = re.compile(r"\b[A-Z]{2}\d{2}(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,3})?\b")
DIGIT = re.compile(r"\d")
PHONE = re.compile(r"(?<![\w+.-])\+?\(?\d{1,4}\)?(?:[ .-]?\(?\d{2,4}\)?){2,5}(?!\w)")
SECRET = re.compile(
    r"\bsk-[A-Za-z0-9_-]{20,}"  # OpenAI, Anthropic
    r"|\b(?:AKIA|ASIA)[0-9A-Z]{16}\b"  # AWS access key ids
    r"|\bgh[pousr]_[A-Za-z0-9]{30,}|\bgithub_pat_[A-Za-z0-9_]{30,}"  # GitHub
    r"|\bxox[abposr]-[A-Za-z0-9-]{10,}"  # Slack
    r"|\bAIza[0-9A-Za-z_-]{35}"  # Google API keys
    r"|\btk_[0-9a-f]{12}_[A-Za-z0-9_-]{43}"  # Tacit's own API keys
    r"|\beyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}"  # JSON web tokens
)
SECRET_MARKS = ("sk-", "AKIA", "ASIA", "gh", "github_pat_", "xox", "AIza", "tk_", "eyJ")
NOT_PHONE = re.compile(r"\d{4}-\d{2}-\d{2}|\d\.\d{5}")  # an ISO date, a long decimal
CODE_ADDRESSES = ("0.0.0.0", "127.")  # bind-all and loopback: in code, never a person's address


def _luhn(digits: str) -> bool:
    """Card numbers carry a Luhn check digit; long numbers that fail it (order ids, ...) are left alone."""
    total = 0
    for position, char in enumerate(reversed(digits)):
        value = int(char) * (2 if position % 2 else 1)
        total += value - 9 if value > 9 else value
    return total % 10 == 0


def _card(match: re.Match[str]) -> str:
    return "[CARD]" if _luhn(re.sub(r"\D", "", match.group())) else match.group()


def _phone(match: re.Match[str]) -> str:
    """E.164 lengths, written as phones are: with separators or a leading +. A bare run of digits is an id or
    a number in code far more often than a phone; ISO dates, long decimals and ISBN-13s are kept."""
    text = match.group()
    digits = re.sub(r"\D", "", text)
    isbn = len(digits) == 13 and digits.startswith(("978", "979")) and "-" in text
    if not 7 <= len(digits) <= 15 or text.isdigit() or isbn or NOT_PHONE.search(text):
        return text
    return "[PHONE]"


def _ip(match: re.Match[str]) -> str:
    return match.group() if match.group().startswith(CODE_ADDRESSES) else "[IP]"


def _ipv6(match: re.Match[str]) -> str:
    """A shortened form needs a digit (C++'s ``abc::def`` is a name, not an address); ``::1`` is loopback."""
    text = match.group()
    if "::" in text and (text == "::1" or not any(char.isdigit() for char in text)):
        return text
    return "[IP]"


def _iban(match: re.Match[str]) -> str:
    """IBANs carry a mod-97 check (ISO 13616); codes that only look like one are left alone."""
    compact = match.group().replace(" ", "")
    rearranged = compact[4:] + compact[:4]
    number = "".join(str(int(char, 36)) for char in rearranged)
    return "[IBAN]" if int(number) % 97 == 1 else match.group()


def redact(text: str) -> str:
    """Credentials first (a key may hold digits), then IBANs, cards and phones, the more specific runs of
    digits first.

    Every pattern but the credentials' (which have their own marks) needs an ``@``, a digit or (IPv6, which may have no digit: ``fe80:...:cafe``) a colon, and
    most chat messages have none of them: checking first skips the regex scans that were the larger part of
    the worker's per-message cost. The order of the substitutions is the same either way.
    """
    if any(mark in text for mark in SECRET_MARKS):
        text = SECRET.sub("[SECRET]", text)
    if "@" in text:
        text = EMAIL.sub("[EMAIL]", text)
    digits = DIGIT.search(text) is not None
    if digits:
        text = IPV4.sub(_ip, CARD.sub(_card, IBAN.sub(_iban, text)))
    if ":" in text:
        text = IPV6.sub(_ipv6, text)
    return PHONE.sub(_phone, text) if digits else text


def redact_values(value: Any) -> Any:
    """Every string in a JSON value redacted, keys included: metadata is free-form, and clients put user
    profiles, e-mails and tokens in it as often as in messages."""
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, dict):
        return {redact(key): redact_values(item) for key, item in value.items()}
    if isinstance(value, list):
        return [redact_values(item) for item in value]
    return value


@dataclass(frozen=True)
class Privacy:
    """The worker's privacy policy (``TACIT_REDACT_PII``, ``TACIT_USER_ID_SECRET``)."""

    redact_pii: bool
    user_id_secret: bytes | None

    def pseudonym(self, tenant: str, user_id: str) -> str:
        salt = hmac.new(self.user_id_secret or b"", tenant.encode(), hashlib.sha256).digest()
        return hmac.new(salt, user_id.encode(), hashlib.sha256).hexdigest()[:32]

    def apply(self, event: ChatEvent | SignalEvent) -> ChatEvent | SignalEvent:
        if isinstance(event, SignalEvent):
            return self.apply_to_signal(event)
        changes = {}
        if self.redact_pii:
            changes["content"] = redact(event.content)
            if event.metadata:
                changes["metadata"] = redact_values(event.metadata)
        if self.user_id_secret is not None and event.user_id is not None:
            changes["user_id"] = self.pseudonym(event.tenant, event.user_id)
        return event.model_copy(update=changes) if changes else event

    def apply_to_signal(self, signal: SignalEvent) -> SignalEvent:
        """A signal's free text (a thumb's or rating's comment, an edit's resent text) is a user's words
        like any message, and is redacted the same way."""
        if not self.redact_pii:
            return signal
        texts = {name: redact(text) for name in SIGNAL_TEXTS
                 if isinstance(text := getattr(signal, name, None), str)}
        return signal.model_copy(update=texts) if texts else signal


SIGNAL_TEXTS = ("comment", "text")
