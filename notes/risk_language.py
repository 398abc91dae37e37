"""Risk language in clinical text: what was said, and whether it is the
client's current risk (docs/risk-language.md).

Targets (suicidal ideation, plan, intent, means, self-harm, homicidal
ideation, overdose, abuse disclosure, crisis; abbreviations and the
Spanish-English mixes scribes write) are medspaCy TargetMatcher rules in
notes/risk_rules/targets.json. Whether each occurrence is asserted, denied,
historical, hypothetical or about another person is medspaCy's ConText: its
default rules plus ours in notes/risk_rules/context.json. Pure: text in,
mentions out, no database.

Building the spaCy pipeline takes about a second, so it is built once per
process (risk_pipeline) and reused; scanning a draft then costs milliseconds
(bench/risk.py prints the figure).
"""

import functools
import json
import logging
import re
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from pathlib import Path

RULES_DIR = Path(__file__).resolve().parent / "risk_rules"


class Label:
    ASSERTED = "asserted"  # the client's risk, now (uncertain counts: "possible SI" must be seen)
    DENIED = "denied"
    HISTORICAL = "historical"
    HYPOTHETICAL = "hypothetical"
    OTHER = "other"  # about another person ("her uncle threatened to kill himself")


LABELS = (Label.ASSERTED, Label.DENIED, Label.HISTORICAL, Label.HYPOTHETICAL, Label.OTHER)

# Concepts whose experiencer rule does not apply: an abuse disclosure names
# the other person as the one who harms the client ("her partner hits her").
_EXPERIENCER_EXEMPT = {"ABUSE"}


@dataclass(frozen=True)
class RiskMention:
    concept: str  # e.g. SUICIDAL_IDEATION, SELF_HARM (targets.json categories)
    text: str  # the words matched, as written
    label: str  # one of LABELS
    sentence: str

    @property
    def is_current(self) -> bool:
        return self.label == Label.ASSERTED


@functools.cache
def risk_pipeline():
    """The spaCy pipeline, built once per process. Imports spaCy lazily so
    that code paths without risk scanning (management commands, most tests)
    do not pay for it. Raises FileNotFoundError / ValueError for broken rule
    files: those are our code, not input."""
    import medspacy
    from medspacy.context import ConTextRule
    from medspacy.target_matcher import TargetRule

    # spaCy and weasel give their loggers a stderr handler of their own at
    # import, outside settings.LOGGING and its PHI filter: drop it, so their
    # records go through the root handlers like everything else.
    for name in ("spacy", "weasel"):
        library_logger = logging.getLogger(name)
        library_logger.handlers.clear()
        library_logger.propagate = True

    # The medspaCy tokenizer (splits "SI/HI") with a blank English model: no
    # model download, loads offline. spaCy's rule sentencizer instead of
    # PyRuSH: scribe text is short, and ";" ends a clause for ConText's scope.
    nlp = medspacy.load(medspacy_enable=["medspacy_tokenizer", "medspacy_target_matcher", "medspacy_context"])
    nlp.add_pipe("sentencizer", first=True, config={"punct_chars": [".", "!", "?", ";"]})
    targets = json.loads((RULES_DIR / "targets.json").read_text(encoding="utf-8"))
    nlp.get_pipe("medspacy_target_matcher").add([TargetRule.from_dict(r) for r in targets["target_rules"]])
    nlp.get_pipe("medspacy_context").add(ConTextRule.from_json(str(RULES_DIR / "context.json")))
    return nlp, targets.get("exclusions", [])


def _excluded(ent, exclusions) -> bool:
    doc = ent.doc
    nxt = doc[ent.end].lower_ if ent.end < len(doc) else ""
    prev = doc[ent.start - 1].lower_ if ent.start > 0 else ""
    for rule in exclusions:
        if rule["category"] != ent.label_:
            continue
        if rule.get("first") and ent[0].lower_ not in rule["first"]:
            continue
        if nxt in rule.get("next", ()) or prev in rule.get("previous", ()):
            return True
    return False


def _label(ent) -> str:
    # A modifier inside the target ("n't" in "doesn't want to live") does not
    # modify it; medspaCy's overlap check misses a modifier wholly inside one.
    categories = {
        m.category.upper()
        for m in ent._.modifiers
        if not (ent.start <= m.modifier_span[0] and m.modifier_span[1] <= ent.end)
    }
    if "FAMILY" in categories and ent.label_ not in _EXPERIENCER_EXEMPT:
        return Label.OTHER
    if "HYPOTHETICAL" in categories:
        return Label.HYPOTHETICAL
    if "NEGATED_EXISTENCE" in categories:
        return Label.DENIED
    if "HISTORICAL" in categories:
        return Label.HISTORICAL
    return Label.ASSERTED


def risk_scan(text: str) -> list[RiskMention]:
    """Every risk mention in text, each with its label."""
    return _risk_scan_many([text])[0]


# Sentence ends, as the pipeline's sentencizer has them (ConText's scope is
# one sentence), so each sentence can be scanned on its own.
_SENTENCE_END = re.compile(r"(?<=[.!?;])\s+")


def _required_values(token: dict) -> tuple[bool, list[str]]:
    """(case-sensitive?, the regex alternatives) one token of a target pattern can match."""
    for attr, exact in (("LOWER", False), ("ORTH", True)):
        spec = token.get(attr)
        if isinstance(spec, str):
            return exact, [spec]
        if isinstance(spec, dict) and "IN" in spec:
            return exact, list(spec["IN"])
        if isinstance(spec, dict) and "REGEX" in spec:
            return exact, [spec["REGEX"]]
    return False, []


def _alternative(value: str, *, regex: bool) -> str:
    return value.strip("^$") if regex else re.escape(value)


def _compile(alternatives: set[str]) -> re.Pattern:
    """One regex; the words that start with a letter only at a word start
    ("SI" is not in "session"), which also lets the engine skip most
    positions. A token starts at a word start unless the tokenizer splits a
    word ("can|not"): no rule's most selective token is such a piece."""
    words = sorted((a for a in alternatives if a[:1].isalpha() or a[:1] == "("), key=len, reverse=True)
    others = sorted((a for a in alternatives if a not in words), key=len, reverse=True)
    parts = ([rf"\b(?:{'|'.join(words)})"] if words else []) + others
    return re.compile("|".join(parts) or "(?!)")


@functools.cache
def _candidate_patterns() -> tuple[re.Pattern, re.Pattern]:
    """(lower-case, case-sensitive) regexes that every sentence holding a risk
    target matches. For each target rule, the most selective of its required
    tokens: a token's text is a substring of its sentence, so a sentence that
    matches neither cannot hold a target, and the spaCy pipeline (about 50 µs
    a character) runs only on the few sentences that might: a 1 MB draft of
    clinical prose then costs well under a second, not a minute."""
    targets = json.loads((RULES_DIR / "targets.json").read_text(encoding="utf-8"))
    lower, exact = set(), set()
    for rule in targets["target_rules"]:
        pattern = rule.get("pattern") or [{"LOWER": w} for w in rule["literal"].lower().split()]
        required = [t for t in pattern if t.get("OP") in (None, "!", "+") and _required_values(t)[1]]
        if not required:
            raise ValueError(f"Target rule {rule['literal']!r} has no word to prefilter on.")
        token = max(required, key=lambda t: min(len(v) for v in _required_values(t)[1]))
        case_sensitive, values = _required_values(token)
        regex = any("REGEX" in spec for spec in token.values() if isinstance(spec, dict))
        (exact if case_sensitive else lower).update(_alternative(v, regex=regex) for v in values)
    return _compile(lower), _compile(exact)


def _candidate(sentence: str) -> bool:
    lower, exact = _candidate_patterns()
    return bool(lower.search(sentence.lower()) or exact.search(sentence))


# The most distinct candidate sentences one scan classifies (about 2 ms each).
RISK_SCAN_MAX_SENTENCES = 200


def _unclassified_mention(sentence: str) -> RiskMention:
    lower, exact = _candidate_patterns()
    match = lower.search(sentence.lower()) or exact.search(sentence)
    words = match.group(0) if match else sentence[:60]
    return RiskMention(concept="UNCLASSIFIED", text=words, label=Label.ASSERTED, sentence=sentence)


def _risk_scan_many(texts: list[str]) -> list[list[RiskMention]]:
    """The mentions of each text. Each distinct sentence that might hold risk
    language goes through the pipeline once (within one call, or under
    risk_scan_shared for a whole group). Lines and sentences are scanned
    separately: a scribe's line break ends a statement even without a full
    stop, and ConText's scope never crosses a sentence."""
    memo = _LINE_MEMO.get()
    if memo is None:
        memo = {}
    owners, sentences = [], []
    for i, text in enumerate(texts):
        # Under risk_scan_shared a group's session-wide text comes once per
        # member: its candidate sentences are found once (key: a tuple, so it
        # never meets a sentence key).
        key = ("candidates", text or "")
        candidates = memo.get(key)
        if candidates is None:
            candidates = memo[key] = tuple(
                sentence
                for line in (text or "").splitlines()
                for sentence in _SENTENCE_END.split(line.strip())
                if sentence and _candidate(sentence)
            )
        owners.extend([i] * len(candidates))
        sentences.extend(candidates)
    found: list[list[RiskMention]] = [[] for _ in texts]
    if not sentences:
        return found
    for sentence in sentences:
        if sentence not in memo and (known := _CLASSIFIED.get(sentence)) is not None:
            memo[sentence] = known
    todo = list(dict.fromkeys(sentence for sentence in sentences if sentence not in memo))
    # Beyond the cap a sentence with a risk word is not classified but taken
    # as current risk: the note is marked and flagged for the clinician, and
    # one pathological draft cannot hold a worker for tens of seconds.
    todo, unclassified = todo[:RISK_SCAN_MAX_SENTENCES], todo[RISK_SCAN_MAX_SENTENCES:]
    for sentence in unclassified:
        memo[sentence] = (_unclassified_mention(sentence),)
    if todo:
        nlp, exclusions = risk_pipeline()
        for sentence, doc in zip(todo, nlp.pipe(todo), strict=True):
            memo[sentence] = tuple(
                RiskMention(concept=ent.label_, text=ent.text, label=_label(ent), sentence=ent.sent.text.strip())
                for ent in doc.ents
                if not _excluded(ent, exclusions)
            )
            _classified_keep(sentence, memo[sentence])
    for owner, sentence in zip(owners, sentences, strict=True):
        found[owner].extend(memo[sentence])
    return found


# What the pipeline made of short sentences, per process: a scribe's risk
# boilerplate ("Denies SI/HI.") recurs in most drafts. The rules are files
# read once (risk_pipeline), so a sentence always classifies the same way.
# Bounded: the oldest entry goes first.
_CLASSIFIED: dict[str, tuple[RiskMention, ...]] = {}
CLASSIFIED_CACHE_SIZE = 4096
CLASSIFIED_CACHE_MAX_CHARS = 300


def _classified_keep(sentence: str, mentions: tuple[RiskMention, ...]) -> None:
    if len(sentence) > CLASSIFIED_CACHE_MAX_CHARS:
        return
    _CLASSIFIED[sentence] = mentions
    while len(_CLASSIFIED) > CLASSIFIED_CACHE_SIZE:
        try:
            _CLASSIFIED.pop(next(iter(_CLASSIFIED)), None)
        except (StopIteration, RuntimeError):  # another thread emptied or changed it meanwhile
            break


# The sentences already scanned in the current risk_scan_shared() block, and what
# they hold; None outside one.
_LINE_MEMO: ContextVar[dict | None] = ContextVar("risk_line_memo", default=None)


@contextmanager
def risk_scan_shared():
    """Within this block each distinct sentence is scanned once. A group session
    maps one note per participant, and each note holds the session-wide text
    again (notes.intake): 30 members would otherwise scan it 30 times. Each
    member's own lines are still scanned; the memo ends with the block."""
    token = _LINE_MEMO.set({})
    try:
        yield
    finally:
        _LINE_MEMO.reset(token)


@dataclass(frozen=True)
class RiskSource:
    """One piece of AI or clinician text and where it sits: a section
    (section_key) or a field awaiting placement (field)."""

    text: str
    section_key: str = ""
    field: str = ""


@dataclass(frozen=True)
class RiskFinding:
    """The current-risk statements (or, for a denial finding, the denials) of one source."""

    source: RiskSource
    statements: tuple[str, ...]


def risk_findings(sources: list[RiskSource]) -> tuple[list[RiskFinding], list[RiskFinding]]:
    """(current risk, denials) per source, each statement once per source,
    lower-cased as the dedupe key of its flag (notes.risk_services)."""
    current, denials = [], []
    for source, mentions in zip(sources, _risk_scan_many([s.text for s in sources]), strict=True):
        asserted = tuple(dict.fromkeys(m.text.lower() for m in mentions if m.label == Label.ASSERTED))
        denied = tuple(dict.fromkeys(m.text.lower() for m in mentions if m.label == Label.DENIED))
        if asserted:
            current.append(RiskFinding(source=source, statements=asserted))
        if denied:
            denials.append(RiskFinding(source=source, statements=denied))
    return current, denials


def risk_current_message(finding: RiskFinding, *, where: str) -> str:
    quoted = ", ".join(f"“{s}”" for s in finding.statements)
    return f"Current risk language {where} ({quoted}). Review the risk assessment and safety plan before signing."


def risk_confirm_message(denials: list[RiskFinding]) -> str:
    quoted = ", ".join(dict.fromkeys(f"“{s}”" for d in denials for s in d.statements))
    return (
        f"The draft records a denial ({quoted}) but no risk assessment. Confirm that risk was assessed in this "
        "session: the scribe may have written the denial without the question being asked."
    )
