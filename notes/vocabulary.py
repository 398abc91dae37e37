"""Controlled vocabularies: ICD-10-CM diagnosis codes (simple-icd-10-cm) and
the practice's intervention terms. Pure lookups, no database writes."""

import difflib
import re
from dataclasses import dataclass, field

import simple_icd_10_cm as icd


@dataclass(frozen=True)
class CodeCheck:
    code: str  # normalised, with the dot (F33.1)
    valid: bool
    description: str = ""
    message: str = ""
    suggestions: list[dict] = field(default_factory=list)


_CODE_SHAPE = re.compile(r"^[A-Z][0-9][0-9A-Z](\.?[0-9A-Z]{1,4})?$")


def icd10_check(raw: str) -> CodeCheck:
    """Is this a billable ICD-10-CM code? A category that has children is a
    real code but not billable: refused with its billable children suggested."""
    code = str(raw).strip().upper()
    if not _CODE_SHAPE.match(code) or not icd.is_valid_item(code) or icd.is_chapter_or_block(code):
        return CodeCheck(code=code, valid=False, message=f"“{raw}” is not an ICD-10-CM code.")
    # ICD-10-CM puts the dot after the three-character category. Done here
    # because the library's add_dot costs a third of a millisecond a call.
    dotted = code if "." in code or len(code) <= 3 else f"{code[:3]}.{code[3:]}"
    if not icd.is_leaf(dotted):
        children = [c for c in icd.get_descendants(dotted) if icd.is_leaf(c)][:12]
        return CodeCheck(
            code=dotted,
            valid=False,
            description=icd.get_description(dotted),
            message=f"{dotted} ({icd.get_description(dotted)}) is a category, not a billable code; choose a "
            "more specific code.",
            suggestions=[{"code": c, "description": icd.get_description(c)} for c in children],
        )
    return CodeCheck(code=dotted, valid=True, description=icd.get_description(dotted))


def icd10_search(query: str, *, limit: int = 20) -> list[dict]:
    """Billable codes whose code starts with the query, or whose description
    holds every word of it (the review page's code picker)."""
    words = [w for w in query.lower().split() if w]
    if not words:
        return []
    prefix = query.strip().upper().replace(".", "")
    out = []
    for code, bare, description, lowered in _billable_index():
        if bare.startswith(prefix) or all(w in lowered for w in words):
            out.append({"code": code, "description": description})
            if len(out) >= limit:
                break
    return out


_BILLABLE: list[tuple[str, str, str, str]] | None = None


def _billable_index() -> list[tuple[str, str, str, str]]:
    """(code, code without dot, description, lowercased description) of every
    billable code, built once per process. Taken dotted from the library:
    add_dot() per code would take minutes over ~98,000 codes."""
    global _BILLABLE
    if _BILLABLE is None:
        index = []
        for code in icd.get_all_codes(with_dots=True):
            if icd.is_leaf(code) and not icd.is_chapter_or_block(code):
                description = icd.get_description(code)
                index.append((code, code.replace(".", ""), description, description.lower()))
        _BILLABLE = index
    return _BILLABLE


_HYPHENS = re.compile(r"[-\u2010\u2011\u2012\u2013]")


def _norm(term: str) -> str:
    """Case and spacing only (a hyphen counts as a space: "trauma-focused" is
    "trauma focused"). Other punctuation is part of what was written: "CBT++"
    may be another thing than "CBT", so it is flagged for the clinician to
    choose, never silently resolved."""
    return " ".join(_HYPHENS.sub(" ", str(term)).casefold().split())


# How alike a written term and a vocabulary name must be to be offered as a
# one-click choice (difflib's ratio, 0..1).
NEAREST_CUTOFF = 0.6


class InterventionVocabulary:
    """Resolves a term or one of its synonyms, as written up to case and
    spacing, to the practice's canonical term; offers the nearest terms for
    anything else."""

    def __init__(self, terms: dict[str, list[str]]):
        self._lookup: dict[str, str] = {}
        for term, synonyms in terms.items():
            for name in [term, *synonyms]:
                self._lookup[_norm(name)] = term

    def resolve(self, raw: str) -> str | None:
        return self._lookup.get(_norm(raw))

    def nearest(self, raw: str, *, limit: int = 5) -> list[str]:
        """The canonical terms most like what was written, best first: a name
        the text contains or is contained in ("CBT++", "CBT-I"), then names
        close by spelling ("behavioural activaton"). Empty when nothing is near."""
        written = _norm(raw)
        scored: dict[str, float] = {}
        for name, term in self._lookup.items():
            if not name or not written:
                continue
            score = difflib.SequenceMatcher(None, written, name).ratio()
            if _contains_word(written, name) or _contains_word(name, written):
                score += 1.0
            if score >= NEAREST_CUTOFF and score > scored.get(term, 0.0):
                scored[term] = score
        return [term for term, _ in sorted(scored.items(), key=lambda kv: (-kv[1], kv[0]))][:limit]

    @property
    def terms(self) -> list[str]:
        return sorted(set(self._lookup.values()))


def _contains_word(text: str, name: str) -> bool:
    """name appears in text on its own, not inside another word ("act" is not in "activation")."""
    return re.search(rf"(?<![a-z0-9]){re.escape(name)}(?![a-z0-9])", text) is not None
