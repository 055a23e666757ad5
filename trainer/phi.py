"""Scrub protected health information from report text before it trains a model.

Radiology reports that were de-identified still carry ``___`` markers where identifiers
stood (those drive memorisation: the model learns to reproduce the report around them),
and local reports may carry dates, times, ages over 89, clinicians' names and record
numbers. The scrub is rule-based and deliberately blunt:

- sentences that report a communication ("discussed with Dr. ___ at 10:30", "relayed to
  the ED physician ...") or sign the report ("Electronically signed by ...", "Dictated
  by ...") are dropped whole: they name people and times and never describe the image;
- dates, times, MRN-like numbers (also with a letter prefix) and ``___`` markers are
  removed, a title followed by a name ("Dr. Smith", "Dr.Smith") or a name followed by a
  degree ("Jane Doe, MD") is removed, and an age over 89 (in digits or words) becomes
  "90+" (HIPAA Safe Harbor).

Other names without a title or degree are not found (that needs a named-entity model);
check a sample of scrubbed texts (``registry-train check-manifest --show-scrubbed``)
before training.
"""

from __future__ import annotations

import dataclasses
import re
from collections import Counter
from dataclasses import dataclass, field

from trainer.manifest import Record

_MONTHS = (
    r"(?:jan(?:uary)?|feb(?:ruary)?|mar(?:ch)?|apr(?:il)?|may|june?|july?|aug(?:ust)?|"
    r"sep(?:t(?:ember)?)?|oct(?:ober)?|nov(?:ember)?|dec(?:ember)?)"
)
_NAME = r"[A-Z][a-zA-Z'\-]+"
# Not "PA" or "AP" alone: those are radiographic views ("Frontal Chest, PA and lateral").
_DEGREE = r"(?:M\.D\.|MD|D\.O\.|RN|PA-C|NP|MBBS|PhD|FRCR)"
_PROPER = r"[A-Z][a-z][a-zA-Z'\-]*"
_UNITS = r"(?:one|two|three|four|five|six|seven|eight|nine)"
# Order matters: identifiers first, so "MRN 12345678" is one finding, not a number.
PATTERNS: dict[str, re.Pattern[str]] = {
    "mrn_like_numbers": re.compile(
        r"\b(?:MRN|MR#|medical record(?: number)?|accession(?: number| no\.?)?|acc#)\s*[:#]?\s*"
        r"[A-Za-z]{0,3}\d[\w-]*|\b\d{6,}\b",
        re.IGNORECASE,
    ),
    "dates": re.compile(
        rf"\b\d{{4}}-\d{{1,2}}-\d{{1,2}}\b|\b\d{{1,2}}[/.-]\d{{1,2}}[/.-]\d{{2,4}}\b"
        rf"|\b\d{{1,2}}/\d{{1,2}}\b"
        rf"|\b{_MONTHS}\.?\s+\d{{1,2}}(?:st|nd|rd|th)?(?:,?\s+\d{{4}})?\b"
        rf"|\b\d{{1,2}}(?:st|nd|rd|th)?\s+(?:of\s+)?{_MONTHS}\.?(?:,?\s+\d{{4}})?\b"
        rf"|\b{_MONTHS}\.?\s+\d{{4}}\b|\b(?:19|20|21)\d{{2}}\b",
        re.IGNORECASE,
    ),
    "times": re.compile(
        r"\b\d{1,2}:\d{2}(?::\d{2})?(?:\s*[ap]\.?\s?m\b\.?)?|\b\d{1,2}\s*[ap]\.?\s?m\b\.?"
        r"|\b\d{3,4}\s*(?:hours|hrs|h)\b",
        re.IGNORECASE,
    ),
    "ages_over_89": re.compile(
        r"\b(?:9\d|1[0-4]\d)(?:\s*-\s*|\s+)?(?:years?|yrs?|y)(?:\s*-\s*|\s+)?(?:old|o)\b"
        r"|\b(?:9\d|1[0-4]\d)\s*y/?o\b|\b(?:aged?)\s+(?:9\d|1[0-4]\d)\b"
        rf"|\b(?:ninety|one hundred(?: and)?)(?:[\s-]{_UNITS})?(?:\s*-\s*|\s+)(?:years?|yrs?)"
        r"(?:\s*-\s*|\s+)old\b",
        re.IGNORECASE,
    ),
    "names": re.compile(
        rf"\b(?:Drs?|Doctor|Mr|Mrs|Ms|Miss|Prof)(?:\.\s*|\s+)(?:___|{_NAME})(?:\s+{_NAME})?"
        rf"|\b{_PROPER}(?:\s+[A-Z]\.)?\s+{_PROPER},?\s+{_DEGREE}(?![A-Za-z])"
    ),
    "deid_markers": re.compile(
        r"_{2,}(?:\s*-?\s*(?:years?|yrs?)\s*-?\s*old|[MF]\b)?", re.IGNORECASE
    ),
}
_COMMUNICATION = re.compile(
    r"\b(?:discussed|communicated|notified|paged|telephoned|called|phoned|informed|relayed|"
    r"conveyed|contacted)\b|\b(?:reviewed|spoke|spoken) with\b|\bleft a message\b"
    r"|\bby (?:tele)?phone\b|\bat the time of (?:this )?(?:dictation|interpretation)\b",
    re.IGNORECASE,
)
_SIGNATURE = re.compile(
    r"\b(?:(?:electronically\s+)?signed|dictated|transcribed)\b"
    r"|\b(?:reviewed|read|verified|approved|interpreted|reported)\s+by\b"
    r"|\battending(?:\s+radiologist)?\s*:",
    re.IGNORECASE,
)
_SENTENCE = re.compile(r"(?<=[.!?])\s+")
_DANGLING = re.compile(r"\b(?:on|at|of|from|by|with|dated|since|to|and)\s*(?=[.,;:)]|$)", re.I)


@dataclass
class ScrubCounts:
    """How many of each kind of PHI were removed, over how many texts."""

    texts: int = 0
    texts_changed: int = 0
    found: Counter[str] = field(default_factory=Counter)

    def add(self, other: ScrubCounts) -> None:
        """Add another text's (or set's) counts."""
        self.texts += other.texts
        self.texts_changed += other.texts_changed
        self.found.update(other.found)

    def to_dict(self) -> dict[str, int]:
        """JSON-ready: texts, texts_changed and one count per kind (zeros included)."""
        kinds = ["communication_sentences", "signature_sentences", *PATTERNS]
        return {
            "texts": self.texts,
            "texts_changed": self.texts_changed,
            **{k: self.found[k] for k in kinds},
        }


def _tidy(text: str) -> str:
    """Fix the spacing and punctuation that removals leave behind."""
    for _ in range(3):  # removals can expose a new dangling word or empty bracket
        text = re.sub(r"\(\s*[,;:]?\s*\)|\[\s*\]", "", text)
        text = _DANGLING.sub("", text)
        text = re.sub(r"\s+([.,;:!?)])", r"\1", text)
        text = re.sub(r"\(\s+", "(", text)
        text = re.sub(r"([,;:])(?:\s*[,;:])+", r"\1", text)
        text = re.sub(r"[,;:]\s*([.!?])", r"\1", text)
        text = re.sub(r"([.!?])(?:\s*[.!?])+", r"\1", text)
        text = re.sub(r"\s{2,}", " ", text).strip()
        text = re.sub(r"^[\s,;:.!?-]+", "", text)
    return text


def scrub_text(text: str) -> tuple[str, ScrubCounts]:
    """Return ``text`` without PHI, and what was removed."""
    counts = ScrubCounts(texts=1)
    # Names first: their titles end in a full stop that would split the sentence.
    text_without_names, counts.found["names"] = PATTERNS["names"].subn(" ", text.strip())
    kept = []
    for sentence in _SENTENCE.split(text_without_names):
        if _COMMUNICATION.search(sentence):
            counts.found["communication_sentences"] += 1
        elif _SIGNATURE.search(sentence):
            counts.found["signature_sentences"] += 1
        else:
            kept.append(sentence)
    scrubbed = " ".join(kept)
    for kind, pattern in PATTERNS.items():
        if kind == "names":
            continue
        replacement = "90+ year old" if kind == "ages_over_89" else " "
        scrubbed, found = pattern.subn(replacement, scrubbed)
        counts.found[kind] += found
    scrubbed = _tidy(scrubbed)
    counts.texts_changed = int(scrubbed != " ".join(text.split()))
    return scrubbed, counts


def scrub_texts(texts: list[str]) -> tuple[list[str], ScrubCounts]:
    """Scrub each text; the counts are summed over all of them."""
    total = ScrubCounts()
    cleaned = []
    for text in texts:
        clean, counts = scrub_text(text)
        cleaned.append(clean)
        total.add(counts)
    return cleaned, total


def scrub_records(records: list[Record]) -> tuple[list[Record], list[Record], ScrubCounts]:
    """Records with scrubbed texts, the records left with no text, and the counts."""
    kept, emptied = [], []
    total = ScrubCounts()
    for record in records:
        clean, counts = scrub_text(record.text)
        total.add(counts)
        (kept if clean else emptied).append(dataclasses.replace(record, text=clean))
    return kept, emptied, total
