"""Redaction before storage: personal data is replaced by placeholders before a memory is written.

Redaction is **opt-in**: open the cube with ``redactor=True`` (the default patterns below), a
:class:`Redactor` with your own patterns, or any ``str -> str`` callable. Once on, it runs on the
content of every memory the cube writes (``add``, ``add_many``, ``add_messages``, ``update``);
the number of replacements per kind is recorded in ``provenance.detail["redacted"]``. Free
metadata is not redacted: keep personal data out of it, or redact it before adding.

Default patterns: e-mail addresses (``[EMAIL]``), payment card numbers of 13 to 19 digits that
pass the Luhn check (``[CARD]``), and phone numbers of 8 to 15 digits written with separators or a
leading ``+`` (``[PHONE]``). Dates such as ``2024-05-01`` and plain numbers are left alone.

Example:
    >>> r = Redactor.default()
    >>> r.redact("mail me at ann@example.org or call +44 20 7946 0958")[0]
    'mail me at [EMAIL] or call [PHONE]'
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from memcube.errors import InvalidInputError

EMAIL = re.compile(r"(?<![\w.+-])[\w.+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}(?![\w-])")
CARD = re.compile(r"(?<![\w-])(?:\d[ -]?){12,18}\d(?![\w-])")
PHONE = re.compile(
    r"(?<![\w/+-])(?:\+\d{1,3}[\s.-]?)?(?:\(\d{1,4}\)[\s.-]?)?\d{2,5}(?:[\s.-]\d{2,5}){1,4}(?![\w/-])"
    r"|(?<![\w/])\+\d{8,15}(?!\w)"
)
_DATE = re.compile(r"^\d{4}[-./]\d{1,2}[-./]\d{1,2}$|^\d{1,2}[-./]\d{1,2}[-./]\d{2,4}$")


def luhn_ok(digits: str) -> bool:
    """The Luhn checksum used by payment card numbers."""
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch)
        if i % 2 == 1:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return total % 10 == 0


def _card(match: re.Match[str]) -> bool:
    digits = re.sub(r"\D", "", match.group(0))
    return 13 <= len(digits) <= 19 and luhn_ok(digits)


def _phone(match: re.Match[str]) -> bool:
    text = match.group(0)
    digits = re.sub(r"\D", "", text)
    if not 8 <= len(digits) <= 15 or _DATE.match(text.strip()):
        return False
    return True


#: A pattern: a compiled regex and an optional check of each match (return False to keep it).
Pattern = tuple["re.Pattern[str]", "Callable[[re.Match[str]], bool] | None"]


def default_patterns() -> dict[str, Pattern]:
    """The default patterns, applied in this order (cards before phones: a card number would
    otherwise look like a long phone number)."""
    return {"EMAIL": (EMAIL, None), "CARD": (CARD, _card), "PHONE": (PHONE, _phone)}


@dataclass
class Redactor:
    """Replaces matches of named patterns by ``[NAME]``.

    Args:
        patterns: name -> regex, or name -> ``(regex, check)`` where ``check(match)`` may veto a
            match. Applied in order.

    Example:
        >>> import re
        >>> Redactor({"TICKET": re.compile(r"TCK-\\d+")}).redact("see TCK-123")
        ('see [TICKET]', {'TICKET': 1})
    """

    patterns: Mapping[str, re.Pattern[str] | Pattern] = field(default_factory=default_patterns)

    @classmethod
    def default(cls) -> Redactor:
        return cls()

    def redact(self, text: str) -> tuple[str, dict[str, int]]:
        """Return the redacted text and how many replacements of each kind were made."""
        counts: dict[str, int] = {}
        for name, spec in self.patterns.items():
            regex, check = spec if isinstance(spec, tuple) else (spec, None)

            def repl(
                m: re.Match[str],
                name: str = name,
                check: Callable[[re.Match[str]], bool] | None = check,
            ) -> str:
                if check is not None and not check(m):
                    return m.group(0)
                counts[name] = counts.get(name, 0) + 1
                return f"[{name}]"

            text = regex.sub(repl, text)
        return text, counts

    def __call__(self, text: str) -> str:
        return self.redact(text)[0]


RedactorLike = Redactor | Callable[[str], str]


def make_redactor(
    value: RedactorLike | bool | None,
) -> Callable[[str], tuple[str, dict[str, int]]] | None:
    """Normalize the ``redactor=`` option of :meth:`MemCube.open` into ``text -> (text, counts)``."""
    if value is None or value is False:
        return None
    if value is True:
        return Redactor.default().redact
    if isinstance(value, Redactor):
        return value.redact
    if callable(value):
        fn = value

        def wrapped(text: str) -> tuple[str, dict[str, int]]:
            out = fn(text)
            if not isinstance(out, str):
                raise InvalidInputError(
                    f"the redactor returned {type(out).__name__}; it must return the text (str)."
                )
            return out, ({"custom": 1} if out != text else {})

        return wrapped
    raise InvalidInputError("redactor must be True, a Redactor, or a str -> str callable.")


__all__ = ["Redactor", "default_patterns", "luhn_ok", "make_redactor"]
